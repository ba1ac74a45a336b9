"""A reviewer's standing in a queue: who works live, pauses (by a lead, by the honeypot rule), and
how claims (workspace and API) and the REST pause/resume honour it."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import HoneypotCheck
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM, Actor
from reviewapp.errors import Conflict, Invalid
from reviewapp.models import AuditEvent, Notification, QueueStanding, ReviewTask, StandingStatus
from reviewapp.services.claims import task_claim_next
from reviewapp.services.standing import (
    queue_standing_for,
    queue_standing_pause,
    queue_standing_qualify,
    queue_standing_resume,
    reviewers_overview,
)
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory


@pytest.fixture
def reviewer(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="rev1")
    queue.members.add(user)
    return user


@pytest.fixture
def lead(db):  # type: ignore[no-untyped-def]
    user = UserFactory(username="lead1")
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


def test_a_member_of_a_queue_without_onboarding_is_live(queue, reviewer) -> None:
    standing = queue_standing_for(queue=queue, reviewer=reviewer)
    assert standing.live and standing.status == "live"


def test_a_queue_with_onboarding_wants_it_before_live_work(policy, queue, reviewer) -> None:
    queue.onboarding_size = 3
    queue.save()
    ReviewTaskFactory(policy=policy, queue=queue)
    standing = queue_standing_for(queue=queue, reviewer=reviewer)
    assert not standing.live and standing.needs_onboarding and standing.status == "onboarding"
    assert task_claim_next(reviewer=reviewer, queue=queue) is None
    queue_standing_qualify(queue=queue, reviewer=reviewer, actor=Actor.of(reviewer))
    assert queue_standing_for(queue=queue, reviewer=reviewer).live
    assert task_claim_next(reviewer=reviewer, queue=queue) is not None


def test_a_paused_reviewer_claims_nothing_and_loses_the_lease_they_held(policy, queue, reviewer, lead) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    held = task_claim_next(reviewer=reviewer, queue=queue).task
    queue_standing_pause(queue=queue, reviewer=reviewer, reason="Rushing: 3 s per item", actor=Actor.of(lead))
    assert task_claim_next(reviewer=reviewer, queue=queue) is None
    assert ReviewTask.objects.get(pk=held.pk).leased_by_id is None
    standing = queue_standing_for(queue=queue, reviewer=reviewer)
    assert (standing.status, standing.reason, standing.automatic) == ("paused", "Rushing: 3 s per item", False)
    event = AuditEvent.objects.get(action="standing.paused")
    assert (event.object_type, event.object_id, event.actor_id) == ("reviewer", str(reviewer.pk), lead.pk)
    assert event.after["queue"] == queue.pk and event.after["released_tasks"] == [held.pk]
    assert Notification.objects.get(user=reviewer).kind == "paused"


def test_a_pause_needs_a_reason_and_happens_once(queue, reviewer, lead) -> None:
    with pytest.raises(Invalid):
        queue_standing_pause(queue=queue, reviewer=reviewer, reason="  ", actor=Actor.of(lead))
    queue_standing_pause(queue=queue, reviewer=reviewer, reason="r", actor=Actor.of(lead))
    with pytest.raises(Conflict):
        queue_standing_pause(queue=queue, reviewer=reviewer, reason="again", actor=Actor.of(lead))
    assert AuditEvent.objects.filter(action="standing.paused").count() == 1


def test_a_lead_resumes_a_paused_reviewer_and_only_a_paused_one(policy, queue, reviewer, lead) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    with pytest.raises(Conflict):
        queue_standing_resume(queue=queue, reviewer=reviewer, reason="ok", actor=Actor.of(lead))
    queue_standing_pause(queue=queue, reviewer=reviewer, reason="r", actor=Actor.of(lead))
    with pytest.raises(Invalid):
        queue_standing_resume(queue=queue, reviewer=reviewer, reason="", actor=Actor.of(lead))
    queue_standing_resume(queue=queue, reviewer=reviewer, reason="talked it through", actor=Actor.of(lead))
    assert queue_standing_for(queue=queue, reviewer=reviewer).live
    assert task_claim_next(reviewer=reviewer, queue=queue) is not None
    assert AuditEvent.objects.get(action="standing.resumed").after["note"] == "talked it through"


def test_qualifying_lifts_an_automatic_pause_but_not_a_leads(queue, reviewer, lead) -> None:
    queue_standing_pause(queue=queue, reviewer=reviewer, reason="auto", actor=SYSTEM, automatic=True)
    queue_standing_qualify(queue=queue, reviewer=reviewer, actor=Actor.of(reviewer))
    assert queue_standing_for(queue=queue, reviewer=reviewer).live
    queue_standing_pause(queue=queue, reviewer=reviewer, reason="lead says no", actor=Actor.of(lead))
    queue_standing_qualify(queue=queue, reviewer=reviewer, actor=Actor.of(reviewer))
    standing = queue_standing_for(queue=queue, reviewer=reviewer)
    assert standing.paused and standing.reason == "lead says no" and not standing.may_requalify


# ---- the honeypot rule, driven through the real path: claim, answer, resolution, scoring ----


def answer_honeypots(policy, queue, reviewer, answers: list[bool]) -> None:  # type: ignore[no-untyped-def]
    """Serve the reviewer one honeypot per answer and answer it right (True) or wrong (False)."""
    for right in answers:
        item = ContentItemFactory()
        gold = gold_record(
            item_id=item.pk,
            policy_version=policy.current_version(),
            labels=["violating"],
            source="adjudication",
            actor=SYSTEM,
        )
        task = ReviewTaskFactory(policy=policy, queue=queue, item=item, reason="honeypot")
        HoneypotCheck.objects.create(task=task, gold=gold)
        claim = task_claim_next(reviewer=reviewer, queue=queue)
        assert claim is not None and claim.task.pk == task.pk
        annotation_submit(
            task_id=task.pk,
            reviewer=reviewer,
            submission_id=uuid.uuid4(),
            labels=["violating" if right else "not_violating"],
        )


@pytest.fixture
def pausing_queue(queue, settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # the answer resolves (and its honeypot is scored) as it is submitted
    queue.pause_below_accuracy = 0.6
    queue.pause_window = 4
    queue.save()
    return queue


def test_the_rule_waits_for_a_full_window(policy, pausing_queue, reviewer) -> None:
    answer_honeypots(policy, pausing_queue, reviewer, [False, False, False])
    assert queue_standing_for(queue=pausing_queue, reviewer=reviewer).live


def test_accuracy_below_the_threshold_over_the_window_pauses_automatically(policy, pausing_queue, reviewer) -> None:
    answer_honeypots(policy, pausing_queue, reviewer, [True, True, False, False])
    standing = queue_standing_for(queue=pausing_queue, reviewer=reviewer)
    assert standing.paused and standing.automatic and standing.may_requalify
    assert "2 of your last 4" in standing.reason and "50%" in standing.reason and "60%" in standing.reason
    event = AuditEvent.objects.get(action="standing.paused")
    assert (event.actor_label, event.after["automatic"]) == ("system", True)
    assert Notification.objects.filter(user=reviewer, kind="paused").count() == 1


def test_accuracy_at_the_threshold_keeps_the_reviewer_working(policy, pausing_queue, reviewer) -> None:
    pausing_queue.pause_below_accuracy = 0.75
    pausing_queue.save()
    answer_honeypots(policy, pausing_queue, reviewer, [True, False, True, True, True])
    assert queue_standing_for(queue=pausing_queue, reviewer=reviewer).live


def test_answers_before_a_reviewer_is_readmitted_do_not_count_again(policy, pausing_queue, reviewer) -> None:
    answer_honeypots(policy, pausing_queue, reviewer, [False] * 4)
    queue_standing_qualify(queue=pausing_queue, reviewer=reviewer, actor=Actor.of(reviewer))
    answer_honeypots(policy, pausing_queue, reviewer, [True, False, True])
    assert queue_standing_for(queue=pausing_queue, reviewer=reviewer).live
    answer_honeypots(policy, pausing_queue, reviewer, [True])
    assert queue_standing_for(queue=pausing_queue, reviewer=reviewer).live  # 3/4 since re-admission


def test_a_queue_without_a_threshold_never_pauses(policy, queue, reviewer, settings) -> None:
    settings.UNDO_WINDOW_SECONDS = 0
    queue.pause_window = 1
    queue.save()
    answer_honeypots(policy, queue, reviewer, [False, False])
    assert not QueueStanding.objects.filter(status=StandingStatus.PAUSED).exists()


def test_the_overview_lists_standing_accuracy_and_answers_this_week(policy, pausing_queue, reviewer) -> None:
    answer_honeypots(policy, pausing_queue, reviewer, [True, True, False, False])
    (row,) = [row for row in reviewers_overview() if row.user == reviewer]
    assert [s.status for s in row.standings] == ["paused"]
    assert (row.honeypots_answered, row.honeypots_right, row.answers_7d) == (4, 2, 4)


# ---- REST: the claim refuses a reviewer who is not live; pause and resume need a lead with queues:write ----


def test_the_api_claim_says_why_a_reviewer_may_not_work(policy, queue, reviewer, lead, make_token) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=reviewer)}")
    queue_standing_pause(queue=queue, reviewer=reviewer, reason="Too many misses", actor=Actor.of(lead))
    response = api.post(f"/api/v1/queues/{queue.pk}/claim")
    assert response.status_code == 409
    assert response.json()["standing"] == "paused" and "Too many misses" in response.json()["detail"]
    queue_standing_resume(queue=queue, reviewer=reviewer, reason="ok", actor=Actor.of(lead))
    queue.onboarding_size = 2
    queue.save()
    response = api.post(f"/api/v1/queues/{queue.pk}/claim")
    assert response.status_code == 409 and response.json()["standing"] == "onboarding"
    assert "onboarding set" in response.json()["detail"]
    assert ReviewTask.objects.filter(leased_by__isnull=False).count() == 0


def test_rest_pause_and_resume_need_a_leads_token_with_queues_write(queue, reviewer, lead, make_token) -> None:
    def client(scopes, user):  # type: ignore[no-untyped-def]
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(scopes, user=user)}")
        return api

    url = f"/api/v1/reviewers/{reviewer.pk}/pause"
    body = {"queue": queue.pk, "reason": "Spot checks failing"}
    assert client(["tasks:write"], lead).post(url, body, format="json").status_code == 403
    assert client(["queues:write"], reviewer).post(url, body, format="json").status_code == 403
    assert client(["queues:write"], None).post(url, body, format="json").status_code == 403
    leads = client(["queues:write"], lead)
    assert leads.post(url, {"queue": queue.pk}, format="json").status_code == 400
    response = leads.post(url, body, format="json")
    assert response.status_code == 200 and response.json()["status"] == "paused"
    assert response.json()["reason"] == "Spot checks failing"
    assert leads.post(url, body, format="json").status_code == 409
    resume = f"/api/v1/reviewers/{reviewer.pk}/resume"
    response = leads.post(resume, {"queue": queue.pk, "reason": "better now"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "live"
    event = AuditEvent.objects.get(action="standing.paused")
    assert event.actor_label.startswith("token:") or event.actor_id == lead.pk


# ---- the lead's reviewer page, as plain forms ----


def test_the_reviewer_page_refuses_a_pause_without_a_reason_and_pauses_with_one(queue, reviewer, lead) -> None:
    client = Client()
    client.force_login(lead)
    url = f"/lead/reviewers/{reviewer.pk}/pause"
    response = client.post(url, {"queue": queue.pk, "reason": "  "})
    assert response.status_code == 400 and "Give a reason" in response.content.decode()
    assert queue_standing_for(queue=queue, reviewer=reviewer).live
    response = client.post(url, {"queue": queue.pk, "reason": "<script>x</script> rushing"})
    assert response.status_code == 302
    page = client.get(f"/lead/reviewers/{reviewer.pk}/").content.decode()
    assert "&lt;script&gt;x&lt;/script&gt; rushing" in page and "<script>x</script>" not in page
    response = client.post(url, {"queue": queue.pk, "reason": "again"})
    assert response.status_code == 400 and "already paused" in response.content.decode()
    response = client.post(
        f"/lead/reviewers/{reviewer.pk}/resume", {"queue": queue.pk, "reason": "ok"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and 'id="standings"' in response.content.decode()
    assert 'hx-swap-oob="true"' in response.content.decode()
    assert queue_standing_for(queue=queue, reviewer=reviewer).live


def test_a_paused_reviewer_posting_the_plain_form_is_told_why_not_that_the_queue_is_empty(
    policy, queue, reviewer, lead
) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    queue_standing_pause(queue=queue, reviewer=reviewer, reason="Coaching session first", actor=Actor.of(lead))
    client = Client()
    client.force_login(reviewer)
    page = client.post(f"/queues/{queue.pk}/work", follow=True).content.decode()
    assert "Coaching session first" in page
    assert "Nothing to review here right now" not in page
