"""Round trips of the claim and lease services, pinned.

Each statement is a round trip that every reviewer pays on every item, so these counts are pinned
so that an added query shows up here. The services run no `atomic()` of their own: one statement
is its own transaction, so the counts are the same in production (no BEGIN and COMMIT around).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviewapp.models import AuditEvent, ModelDecision, ReviewTask, RoutingOutcome, TaskSkip
from reviewapp.services.claims import task_claim_next, task_lease_renew, task_release
from reviewapp.services.leases import task_leases_expire
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory

# Before the claim statement, the reviewer's standing in the queue (onboarding, pause): a probe of
# the (queue, reviewer) unique index (reviewapp.services.standing).
STANDING = 1


@pytest.fixture
def reviewer(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="rev1")


def test_a_claim_is_one_statement_with_its_lease_and_audit_row(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    with CaptureQueriesContext(connection) as context:
        claim = task_claim_next(reviewer=reviewer, queue=queue)
    assert len(context) == STANDING + 1, context.captured_queries
    assert claim.task.pk == task.pk and not claim.resumed
    stored = ReviewTask.objects.get(pk=task.pk)
    assert (stored.leased_by_id, stored.lease_expires_at) == (reviewer.pk, claim.task.lease_expires_at)
    event = AuditEvent.objects.get(action="task.claimed", object_id=str(task.pk))
    assert (event.actor_id, event.actor_label, event.item_id) == (reviewer.pk, "rev1", task.item_id)
    assert event.after["leased_by"] == reviewer.pk
    assert event.after["lease_expires_at"].startswith(claim.task.lease_expires_at.isoformat()[:19])


def test_resuming_a_held_task_is_one_statement_and_writes_nothing(policy, queue, reviewer) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    first = task_claim_next(reviewer=reviewer, queue=queue)
    with CaptureQueriesContext(connection) as context:
        again = task_claim_next(reviewer=reviewer, queue=queue)
    assert len(context) == STANDING + 1, context.captured_queries
    assert again.task.pk == first.task.pk and again.resumed
    assert again.task.lease_expires_at == first.task.lease_expires_at
    assert AuditEvent.objects.filter(action="task.claimed").count() == 1
    assert ReviewTask.objects.filter(leased_by=reviewer).count() == 1


def test_an_empty_queue_costs_one_statement(queue, reviewer) -> None:
    with CaptureQueriesContext(connection) as context:
        assert task_claim_next(reviewer=reviewer, queue=queue) is None
    assert len(context) == STANDING + 1


def test_a_daily_graphic_cap_adds_only_the_exposure_count(policy, queue, reviewer) -> None:
    queue.graphic_daily_cap = 5
    queue.save()
    ReviewTaskFactory(policy=policy, queue=queue)
    with CaptureQueriesContext(connection) as context:
        assert task_claim_next(reviewer=reviewer, queue=queue) is not None
    assert len(context) == STANDING + 2, context.captured_queries


def test_the_claimed_task_comes_with_item_policy_and_decision_loaded(policy, queue, reviewer) -> None:
    item = ContentItemFactory(metadata={"language": "de"}, media_urls=["https://m.example/1.jpg"], embedding=[0.5])
    decision = ModelDecision.objects.create(
        item=item,
        policy=policy,
        model_name="toxicity",
        model_version="3",
        score=0.55,
        evidence_spans=[{"start": 0, "end": 3, "label": "insult"}],
        routing_outcome=RoutingOutcome.REVIEW,
        sampling_propensity=1.0,
    )
    ReviewTaskFactory(policy=policy, queue=queue, item=item, decision=decision)
    claim = task_claim_next(reviewer=reviewer, queue=queue)
    with CaptureQueriesContext(connection) as context:
        task = claim.task
        loaded = (task.item.metadata, task.item.media_urls, task.policy.key, task.decision.evidence_spans, task.queue)
    assert len(context) == 0
    assert loaded == ({"language": "de"}, ["https://m.example/1.jpg"], policy.key, decision.evidence_spans, queue)
    assert task.item.created_at == item.created_at and task.due_at == ReviewTask.objects.get(pk=task.pk).due_at
    assert task.item.embedding == [0.5]  # not read by the claim; loaded when asked for


def test_a_task_without_decision_has_none(policy, queue, reviewer) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    assert task_claim_next(reviewer=reviewer, queue=queue).task.decision is None


def test_renewing_a_lease_is_one_statement(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    task_claim_next(reviewer=reviewer, queue=queue)
    with CaptureQueriesContext(connection) as context:
        task_lease_renew(task_id=task.pk, reviewer=reviewer)
    assert len(context) == 1


def test_skipping_is_one_statement_and_idempotent(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    task_claim_next(reviewer=reviewer, queue=queue)
    for _ in range(2):
        with CaptureQueriesContext(connection) as context:
            task_release(task_id=task.pk, reviewer=reviewer, reason="not in my language")
        assert len(context) == 1
    task.refresh_from_db()
    assert (task.leased_by, task.lease_expires_at) == (None, None)
    assert TaskSkip.objects.get().reason == "not in my language"
    event = AuditEvent.objects.get(action="task.skipped")
    assert (event.object_id, event.actor_id) == (str(task.pk), reviewer.pk)
    assert event.after == {"reason": "not in my language"}


def test_skipping_leaves_another_reviewers_lease_alone(policy, queue, reviewer) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    holder = UserFactory()
    task_claim_next(reviewer=holder, queue=queue)
    task_release(task_id=task.pk, reviewer=reviewer, reason="conflict of interest")
    task.refresh_from_db()
    assert task.leased_by == holder
    assert TaskSkip.objects.filter(task=task, reviewer=reviewer).exists()


def test_skipping_an_unknown_task_says_so(reviewer) -> None:
    with pytest.raises(ReviewTask.DoesNotExist):
        task_release(task_id=987654, reviewer=reviewer, reason="broken")
    assert not AuditEvent.objects.filter(action="task.skipped").exists()


def test_the_lease_sweep_is_one_statement_whatever_it_releases(policy, queue, reviewer) -> None:
    past = timezone.now() - timedelta(minutes=1)
    expired = ReviewTaskFactory.create_batch(3, policy=policy, queue=queue, leased_by=reviewer, lease_expires_at=past)
    live = ReviewTaskFactory(
        policy=policy, queue=queue, leased_by=reviewer, lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    with CaptureQueriesContext(connection) as context:
        assert task_leases_expire(limit=2) == 2
    assert len(context) == 1
    with CaptureQueriesContext(connection) as context:
        assert task_leases_expire() == 1
        assert task_leases_expire() == 0
    assert len(context) == 2
    assert ReviewTask.objects.filter(pk__in=[t.pk for t in expired], leased_by__isnull=True).count() == 3
    assert ReviewTask.objects.get(pk=live.pk).leased_by == reviewer
    events = AuditEvent.objects.filter(action="task.lease_expired")
    assert sorted(e.object_id for e in events) == sorted(str(t.pk) for t in expired)
    assert {(e.actor_label, e.before["leased_by"], e.after["leased_by"]) for e in events} == {
        ("system", reviewer.pk, None)
    }


def test_the_claim_statement_is_planned_once_per_connection(policy, queue) -> None:
    ReviewTaskFactory.create_batch(8, policy=policy, queue=queue)
    for number in range(8):
        assert task_claim_next(reviewer=UserFactory(username=f"claimer{number}"), queue=queue) is not None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%WITH held AS%"],
        )
        executions = [row[0] for row in cursor.fetchall()]
    assert len(executions) == 1 and executions[0] >= 2
