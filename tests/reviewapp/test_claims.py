"""Claims and leases: ordering, exclusivity, expiry, skip, escalate, renewal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.services.annotations import annotation_submit
from reviewapp.models import AuditEvent, ReviewTask, TaskStatus
from reviewapp.services.claims import (
    ClaimError,
    LeaseLost,
    task_claim_next,
    task_escalate,
    task_lease_renew,
    task_release,
)
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory


@pytest.fixture
def reviewer(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="rev1")


def expire(task: ReviewTask) -> None:
    ReviewTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_claims_by_priority_then_due_time(policy, queue, reviewer) -> None:
    now = timezone.now()
    low = ReviewTaskFactory(policy=policy, queue=queue, priority=1, due_at=now)
    urgent_late = ReviewTaskFactory(policy=policy, queue=queue, priority=5, due_at=now + timedelta(hours=2))
    urgent_soon = ReviewTaskFactory(policy=policy, queue=queue, priority=5, due_at=now + timedelta(hours=1))
    order = []
    for _ in range(3):
        claim = task_claim_next(reviewer=UserFactory(), queue=queue)
        order.append(claim.task.pk)
    assert order == [urgent_soon.pk, urgent_late.pk, low.pk]


def test_claim_sets_lease_from_queue_and_audits(policy, queue, reviewer) -> None:
    queue.lease_seconds = 300
    queue.save()
    ReviewTaskFactory(policy=policy, queue=queue)
    claim = task_claim_next(reviewer=reviewer, queue=queue)
    assert claim.task.leased_by == reviewer and not claim.resumed
    assert 290 < (claim.task.lease_expires_at - claim.task.claimed_at).total_seconds() <= 300
    assert AuditEvent.objects.filter(action="task.claimed", object_id=str(claim.task.pk)).exists()


def test_reviewer_gets_their_held_task_back(policy, queue, reviewer) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    first = task_claim_next(reviewer=reviewer, queue=queue)
    again = task_claim_next(reviewer=reviewer, queue=queue)
    assert again.task.pk == first.task.pk and again.resumed


def test_leased_task_is_not_claimable_until_lease_expires(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    task_claim_next(reviewer=reviewer, queue=queue)
    other = UserFactory()
    assert task_claim_next(reviewer=other, queue=queue) is None
    expire(task)
    assert task_claim_next(reviewer=other, queue=queue).task.pk == task.pk


def test_closed_tasks_are_never_claimed(policy, queue, reviewer) -> None:
    ReviewTaskFactory(policy=policy, queue=queue, status=TaskStatus.COMPLETED)
    ReviewTaskFactory(policy=policy, queue=queue, status=TaskStatus.ESCALATED)
    assert task_claim_next(reviewer=reviewer, queue=queue) is None


def test_reviewer_never_gets_an_item_they_already_labelled(policy, queue, reviewer) -> None:
    import uuid

    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    claim = task_claim_next(reviewer=reviewer, queue=queue)
    annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
    assert task_claim_next(reviewer=reviewer, queue=queue) is None
    assert task_claim_next(reviewer=UserFactory(), queue=queue).task.pk == task.pk


def test_skip_releases_and_is_not_offered_again(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    task_claim_next(reviewer=reviewer, queue=queue)
    task_release(task_id=task.pk, reviewer=reviewer, reason="not in my language")
    assert task_claim_next(reviewer=reviewer, queue=queue) is None
    assert task_claim_next(reviewer=UserFactory(), queue=queue).task.pk == task.pk
    assert AuditEvent.objects.get(action="task.skipped").after == {"reason": "not in my language"}


def test_skip_needs_a_reason(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    with pytest.raises(ClaimError, match="why"):
        task_release(task_id=task.pk, reviewer=reviewer, reason="  ")


def test_escalate_moves_task_out_of_the_queue(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    task_claim_next(reviewer=reviewer, queue=queue)
    task_escalate(task_id=task.pk, reviewer=reviewer, note="new slur variant, need policy call")
    task.refresh_from_db()
    assert (task.status, task.leased_by) == (TaskStatus.ESCALATED, None)
    assert task_claim_next(reviewer=UserFactory(), queue=queue) is None


def test_escalate_without_lease_is_refused(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    with pytest.raises(LeaseLost):
        task_escalate(task_id=task.pk, reviewer=reviewer, note="")


def test_renew_extends_only_a_live_lease(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    claim = task_claim_next(reviewer=reviewer, queue=queue)
    assert task_lease_renew(task_id=task.pk, reviewer=reviewer) >= claim.task.lease_expires_at
    with pytest.raises(LeaseLost):
        task_lease_renew(task_id=task.pk, reviewer=UserFactory())
    expire(task)
    with pytest.raises(LeaseLost):
        task_lease_renew(task_id=task.pk, reviewer=reviewer)


def test_graphic_items_stop_at_daily_cap(policy, queue, reviewer, settings) -> None:
    from reviewapp.services.wellness import media_reveal

    settings.MEDIA_ALLOWED_HOSTS = ["m.example"]  # only media that can load is counted when revealed
    queue.graphic_daily_cap = 1
    queue.save()
    graphic = [
        ReviewTaskFactory(
            policy=policy,
            queue=queue,
            priority=9,
            item=ContentItemFactory(modality="image", media_urls=[f"https://m.example/{i}.jpg"]),
        )
        for i in range(2)
    ]
    text = ReviewTaskFactory(policy=policy, queue=queue, priority=1)
    claim = task_claim_next(reviewer=reviewer, queue=queue)
    assert claim.task.pk in {t.pk for t in graphic}
    media_reveal(task=claim.task, reviewer=reviewer)
    task_release(task_id=claim.task.pk, reviewer=reviewer, reason="break")
    assert task_claim_next(reviewer=reviewer, queue=queue).task.pk == text.pk
