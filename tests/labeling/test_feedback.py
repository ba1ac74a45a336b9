"""Feedback to reviewers: a lead sends answers back to the same reviewers, reserved tasks in the
claim, and overturned answers (outcomes and their notifications)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from labeling.models import Adjudication, Annotation, GoldSource
from labeling.services.adjudication import adjudication_decide, adjudication_send_back
from labeling.services.annotations import annotation_submit
from labeling.services.appeals import appeal_open
from labeling.services.gold import gold_current, gold_record
from labeling.services.outcomes import outcome_overturns_notify, outcomes_for
from reviewapp.audit import SYSTEM, Actor
from reviewapp.models import (
    AssignmentReason,
    AuditEvent,
    Notification,
    QueueKind,
    ReviewTask,
    TaskAssignment,
    TaskStatus,
)
from reviewapp.services.assignments import review_task_assign_by_id, task_assignment_notes
from reviewapp.services.claims import task_claim_next, task_escalate, task_release
from tests.factories import ContentItemFactory, QueueFactory, ReviewTaskFactory, UserFactory
from tests.reviewapp.test_claim_concurrency import THREADS, run_in_threads
from tests.reviewapp.test_hot_path_queries import HELD, RENDER, REQUEST_PREAMBLE

NOTE = "Read the second turn: it quotes the insult."


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def lead(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="lead")


def answer(task, reviewer, labels):  # type: ignore[no-untyped-def]
    claim = task_claim_next(reviewer=reviewer, queue=task.queue)
    assert claim is not None and claim.task.pk == task.pk
    return annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels)


@pytest.fixture
def disputed(policy, queue):  # type: ignore[no-untyped-def]
    """Two reviewers disagreed; the task waits for a lead. A third member has answered nothing."""
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(external_id="c-7"))
    first, second, third = (UserFactory(username=name) for name in ("ana", "ben", "cy"))
    queue.members.add(first, second, third)
    answer(task, first, ["violating"])
    answer(task, second, ["not_violating"])
    return Adjudication.objects.get(task=task), (first, second, third)


def test_send_back_reserves_the_task_for_the_same_reviewers_with_the_note(disputed, lead) -> None:
    adjudication, (first, second, third) = disputed
    earlier = list(Annotation.objects.filter(task=adjudication.task).order_by("pk"))
    task = adjudication_send_back(adjudication_id=adjudication.pk, lead=lead, note=NOTE)

    task.refresh_from_db()
    assert (task.status, task.assigned, task.annotation_count, task.required_annotations) == (
        TaskStatus.OPEN,
        True,
        0,
        2,
    )
    # Their answers are withdrawn but kept, each audited.
    assert all(a.retracted_at is not None for a in Annotation.objects.filter(pk__in=[a.pk for a in earlier]))
    retracted = AuditEvent.objects.filter(action="annotation.retracted", actor_id=lead.pk)
    assert sorted(int(e.object_id) for e in retracted) == [a.pk for a in earlier]
    sent_back = AuditEvent.objects.get(action="adjudication.sent_back")
    assert sent_back.after["reviewers"] == [first.pk, second.pk] and sent_back.after["note"] == NOTE
    assigned = AuditEvent.objects.get(action="task.assigned")
    assert assigned.after == {"reviewers": [first.pk, second.pk], "reason": "sent_back", "note": NOTE}
    # One open assignment each, with the note; a notification each, nothing for anyone else.
    assignments = TaskAssignment.objects.filter(task=task).order_by("reviewer_id")
    assert [(a.reviewer_id, a.reason, a.note, a.created_by_id) for a in assignments] == [
        (first.pk, AssignmentReason.SENT_BACK, NOTE, lead.pk),
        (second.pk, AssignmentReason.SENT_BACK, NOTE, lead.pk),
    ]
    notified = Notification.objects.filter(kind="sent_back")
    assert sorted(n.user_id for n in notified) == [first.pk, second.pk]
    assert all(NOTE in n.text and "c-7" in n.text and n.url == f"/queues/{task.queue_id}/work" for n in notified)

    # A third member of the queue gets nothing.
    assert task_claim_next(reviewer=third, queue=task.queue) is None

    # Each of the two is served it, sees the note, answers; the assignment is fulfilled.
    claim = task_claim_next(reviewer=first, queue=task.queue)
    assert claim.task.pk == task.pk
    assert [a.note for a in task_assignment_notes(task=claim.task, reviewer=first)] == [NOTE]
    annotation_submit(task_id=task.pk, reviewer=first, submission_id=uuid.uuid4(), labels=["violating"])
    assert TaskAssignment.objects.get(task=task, reviewer=first).fulfilled_at is not None
    assert ReviewTask.objects.get(pk=task.pk).assigned  # the second still holds a reservation
    assert task_claim_next(reviewer=third, queue=task.queue) is None
    answer(task, second, ["violating"])

    # The resolution then ran as usual: both agree now, so consensus made the gold label.
    task.refresh_from_db()
    assert (task.status, task.assigned) == (TaskStatus.COMPLETED, False)
    assert task.resolved_at is not None
    gold = gold_current(item_id=task.item_id, policy_id=task.policy_id)
    assert (gold.labels, gold.source, gold.n_annotations) == (["violating"], GoldSource.CONSENSUS, 2)
    assert not TaskAssignment.objects.filter(task=task, fulfilled_at__isnull=True).exists()


def test_sent_back_reviewers_who_disagree_again_go_back_to_the_lead(disputed, lead) -> None:
    adjudication, (first, second, _) = disputed
    task = adjudication_send_back(adjudication_id=adjudication.pk, lead=lead, note=NOTE)
    answer(task, first, ["violating"])
    answer(task, second, ["not_violating"])
    reopened = Adjudication.objects.filter(task=task, status="open").get()
    assert reopened.pk != adjudication.pk


def test_an_escalation_without_answers_goes_to_one_more_reviewer(policy, queue, lead) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    reviewer = UserFactory()
    task_claim_next(reviewer=reviewer, queue=queue)
    task_escalate(task_id=task.pk, reviewer=reviewer, note="unsure")
    adjudication = Adjudication.objects.get(task=task)
    task = adjudication_send_back(adjudication_id=adjudication.pk, lead=lead, note=NOTE)
    assert (task.status, task.assigned) == (TaskStatus.OPEN, False)
    assert task_claim_next(reviewer=UserFactory(), queue=queue).task.pk == task.pk


def test_assignment_notes_cost_nothing_on_a_task_reserved_for_nobody(policy, queue) -> None:
    task, reviewer = ReviewTaskFactory(policy=policy, queue=queue), UserFactory()
    with CaptureQueriesContext(connection) as context:
        assert task_assignment_notes(task=task, reviewer=reviewer) == []
    assert len(context) == 0


# ---- the claim and reserved tasks ----


def test_an_assigned_task_is_claimable_only_by_its_reviewers_and_served_to_them_first(policy, queue, lead) -> None:
    unassigned = ReviewTaskFactory(policy=policy, queue=queue, priority=9)
    reserved = ReviewTaskFactory(policy=policy, queue=queue, priority=1)
    mine, other = UserFactory(), UserFactory()
    review_task_assign_by_id(
        task_id=reserved.pk, reviewers=[mine], reason=AssignmentReason.ASSIGNED, note="", actor=Actor.of(lead)
    )
    # The other reviewer gets the unassigned task, never the reserved one.
    assert task_claim_next(reviewer=other, queue=queue).task.pk == unassigned.pk
    annotation_submit(task_id=unassigned.pk, reviewer=other, submission_id=uuid.uuid4(), labels=["violating"])
    assert task_claim_next(reviewer=other, queue=queue) is None
    # Their reviewer is served the reserved task first, though another has a higher priority.
    ReviewTaskFactory(policy=policy, queue=queue, priority=50)
    with CaptureQueriesContext(connection) as context:
        claim = task_claim_next(reviewer=mine, queue=queue)
    assert len(context) == 2  # the reviewer's standing in the queue, then still one claim statement
    assert claim.task.pk == reserved.pk and not claim.resumed
    assert task_assignment_notes(task=claim.task, reviewer=mine) == []  # no note: nothing to show


def test_skipping_a_reserved_task_cancels_the_reservation(policy, queue, lead) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    mine, other = UserFactory(), UserFactory()
    review_task_assign_by_id(
        task_id=task.pk, reviewers=[mine], reason=AssignmentReason.ASSIGNED, note="yours", actor=Actor.of(lead)
    )
    assert task_claim_next(reviewer=other, queue=queue) is None
    assert task_claim_next(reviewer=mine, queue=queue).task.pk == task.pk
    with CaptureQueriesContext(connection) as context:
        task_release(task_id=task.pk, reviewer=mine, reason="conflict of interest")
    assert len(context) == 1
    task.refresh_from_db()
    assert (task.assigned, task.leased_by_id) == (False, None)
    assert TaskAssignment.objects.get(task=task).cancelled_at is not None
    assert task_claim_next(reviewer=other, queue=queue).task.pk == task.pk


def test_skipping_one_of_two_reservations_keeps_the_task_reserved(policy, queue, lead) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    first, second, third = UserFactory(), UserFactory(), UserFactory()
    review_task_assign_by_id(
        task_id=task.pk, reviewers=[first, second], reason=AssignmentReason.ASSIGNED, note="", actor=Actor.of(lead)
    )
    task_release(task_id=task.pk, reviewer=first, reason="not my language")  # without holding it
    task.refresh_from_db()
    assert task.assigned
    assert task_claim_next(reviewer=third, queue=queue) is None
    assert task_claim_next(reviewer=second, queue=queue).task.pk == task.pk


def test_a_held_task_is_resumed_before_a_reserved_one(policy, queue, lead) -> None:
    held = ReviewTaskFactory(policy=policy, queue=queue, priority=5)
    reserved = ReviewTaskFactory(policy=policy, queue=queue, priority=1)
    reviewer = UserFactory()
    assert task_claim_next(reviewer=reviewer, queue=queue).task.pk == held.pk
    review_task_assign_by_id(
        task_id=reserved.pk, reviewers=[reviewer], reason=AssignmentReason.ASSIGNED, note="", actor=Actor.of(lead)
    )
    again = task_claim_next(reviewer=reviewer, queue=queue)
    assert again.task.pk == held.pk and again.resumed


@pytest.mark.slow
def test_concurrent_claims_honour_reservations_and_never_double_lease(transactional_db, policy, queue) -> None:
    reviewers = [UserFactory() for _ in range(THREADS)]
    owner = {}
    for n in range(THREADS * 2):
        task = ReviewTaskFactory(policy=policy, queue=queue, priority=n % 3)
        reviewer = reviewers[n % THREADS]
        review_task_assign_by_id(
            task_id=task.pk, reviewers=[reviewer], reason=AssignmentReason.ASSIGNED, note="", actor=SYSTEM
        )
        owner[task.pk] = reviewer.pk
    free = {t.pk for t in ReviewTaskFactory.create_batch(20, policy=policy, queue=queue, priority=9)}
    barrier = threading.Barrier(THREADS)
    handled: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(reviewer) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
            with lock:
                handled.append((claim.task.pk, reviewer.pk))
            annotation_submit(
                task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["not_violating"]
            )

    run_in_threads(work, [(r,) for r in reviewers])
    counts = Counter(task_id for task_id, _ in handled)
    assert set(counts.values()) == {1} and set(counts) == set(owner) | free
    assert all(owner[task_id] == reviewer_id for task_id, reviewer_id in handled if task_id in owner)
    # Each reviewer's reserved tasks came before any unreserved one they took.
    for reviewer in reviewers:
        taken = [task_id for task_id, reviewer_id in handled if reviewer_id == reviewer.pk]
        reserved = [task_id in owner for task_id in taken]
        assert reserved == sorted(reserved, reverse=True), taken
    assert not ReviewTask.objects.filter(assigned=True).exists()
    assert not TaskAssignment.objects.filter(fulfilled_at__isnull=True).exists()


# ---- outcomes ----


def test_a_lead_overturning_an_answer_lists_it_on_outcomes_and_notifies(disputed, lead) -> None:
    adjudication, (first, second, third) = disputed
    gold = adjudication_decide(adjudication_id=adjudication.pk, lead=lead, labels=["violating"], note="slur variant")
    [outcome] = outcomes_for(reviewer=second)
    assert (outcome.gold, outcome.annotation.reviewer, outcome.item_id) == (gold, second, gold.item_id)
    assert (outcome.your_labels, outcome.final_labels, outcome.note) == (
        ["Not violating"],
        ["Violating"],
        "slur variant",
    )
    assert outcomes_for(reviewer=first) == [] and outcomes_for(reviewer=third) == []
    [notification] = Notification.objects.filter(kind="overturned")
    assert notification.user == second and notification.url == "/outcomes/"
    assert "c-7" in notification.text and "Violating" in notification.text and "slur variant" in notification.text


def test_an_appeal_that_overturns_the_gold_label_tells_the_reviewers_it_overturned(policy, queue, lead) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(source="comments", external_id="c-9"))
    reviewer = UserFactory(username="first")
    answer(task, reviewer, ["violating"])  # consensus of one: gold "violating"
    assert gold_current(item_id=task.item_id, policy_id=policy.pk).source == GoldSource.CONSENSUS
    appeals = QueueFactory(slug="appeals", kind=QueueKind.APPEALS)
    appeal_open(
        source="comments", external_id="c-9", policy_key=policy.key, external_ref="ap-9", statement="", actor=SYSTEM
    )
    appeal_task = ReviewTask.objects.get(queue=appeals)
    answer(appeal_task, UserFactory(username="appeal-reviewer"), ["not_violating"])
    gold = gold_current(item_id=task.item_id, policy_id=policy.pk)
    assert (gold.source, gold.labels) == (GoldSource.APPEAL, ["not_violating"])
    [outcome] = outcomes_for(reviewer=reviewer)
    assert outcome.by_appeal and outcome.final_labels == ["Not violating"]
    assert list(Notification.objects.values_list("user_id", "kind")) == [(reviewer.pk, "overturned")]


def test_consensus_and_an_upheld_outcome_overturn_nobody(disputed, lead) -> None:
    adjudication, (_, second, _) = disputed
    gold = adjudication_decide(adjudication_id=adjudication.pk, lead=lead, labels=["violating"])
    again = gold_record(
        item_id=gold.item_id,
        policy_version=gold.policy_version,
        labels=["violating"],
        source=GoldSource.ADJUDICATION,
        actor=Actor.of(lead),
        adjudicator=lead,
    )
    assert outcome_overturns_notify(gold=again) == []  # the outcome did not change
    assert len(outcomes_for(reviewer=second)) == 1
    assert Notification.objects.filter(kind="overturned").count() == 1


def test_outcomes_cost_three_queries(disputed, lead) -> None:
    adjudication, (_, second, _) = disputed
    adjudication_decide(adjudication_id=adjudication.pk, lead=lead, labels=["violating"])
    with CaptureQueriesContext(connection) as context:
        outcomes = outcomes_for(reviewer=second)
        _ = [(o.excerpt, o.your_labels, o.final_labels, o.gold.policy.name, o.gold.adjudicator) for o in outcomes]
    assert len(context) == 3


def test_a_reviewer_who_left_the_queue_is_not_asked_again(disputed, lead) -> None:
    adjudication, (first, second, _) = disputed
    adjudication.task.queue.members.remove(second)
    task = adjudication_send_back(adjudication_id=adjudication.pk, lead=lead, note=NOTE)
    assert list(TaskAssignment.objects.filter(task=task).values_list("reviewer_id", flat=True)) == [first.pk]
    assert Annotation.objects.get(reviewer=second).retracted_at is None  # their answer still counts
    assert ReviewTask.objects.get(pk=task.pk).annotation_count == 1


def test_a_reservation_lapses_when_the_task_completes_without_its_reviewer(policy, queue, lead) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    mine, other = UserFactory(), UserFactory()
    review_task_assign_by_id(
        task_id=task.pk, reviewers=[mine, other], reason=AssignmentReason.ASSIGNED, note="", actor=Actor.of(lead)
    )
    answer(task, mine, ["violating"])  # one answer is all the queue asks
    task.refresh_from_db()
    assert (task.status, task.assigned) == (TaskStatus.COMPLETED, False)
    assert TaskAssignment.objects.get(reviewer=other).cancelled_at is not None


def test_the_workspace_shows_a_reserved_tasks_note_for_one_more_query(policy, queue, lead) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    reviewer = UserFactory()
    queue.members.add(reviewer)
    review_task_assign_by_id(
        task_id=task.pk, reviewers=[reviewer], reason=AssignmentReason.SENT_BACK, note=NOTE, actor=Actor.of(lead)
    )
    client = Client()
    client.force_login(reviewer)
    client.get("/")
    assert client.post(f"/queues/{queue.pk}/work").status_code == 302
    with CaptureQueriesContext(connection) as context:
        page = client.get(f"/queues/{queue.pk}/work").content.decode()
    assert "A lead sent your answer back" in page and "Read the second turn: it quotes the insult." in page
    assert len(context) == REQUEST_PREAMBLE + HELD + RENDER + 1
