"""Policy leads adjudicate: decide, send back, bulk-confirm; corrections are new gold versions."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError

from labeling.models import Adjudication, GoldLabel, GoldSource
from labeling.services.adjudication import (
    AdjudicationClosed,
    adjudication_decide,
    adjudication_send_back,
    adjudications_confirm_agreed,
)
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_current, gold_record
from reviewapp.audit import Actor
from reviewapp.models import TaskStatus
from reviewapp.services.claims import task_claim_next, task_escalate
from tests.factories import ReviewTaskFactory, UserFactory


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def lead(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="lead")


def answer(task, labels):  # type: ignore[no-untyped-def]
    reviewer = UserFactory()
    assert task_claim_next(reviewer=reviewer, queue=task.queue).task.pk == task.pk
    annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels)


@pytest.fixture
def disputed(policy, queue):  # type: ignore[no-untyped-def]
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    answer(task, ["violating"])
    answer(task, ["not_violating"])
    return Adjudication.objects.get(task=task)


def test_lead_decision_becomes_gold_with_adjudicator(disputed, lead) -> None:
    gold = adjudication_decide(adjudication_id=disputed.pk, lead=lead, labels=["violating"], note="slur variant")
    assert (gold.source, gold.adjudicator, gold.n_annotations, gold.agreement) == (
        GoldSource.ADJUDICATION,
        lead,
        2,
        0.5,
    )
    disputed.refresh_from_db()
    assert disputed.status == "decided" and disputed.gold == gold
    assert disputed.task.status == TaskStatus.COMPLETED


def test_second_decision_on_the_same_item_is_refused(disputed, lead) -> None:
    adjudication_decide(adjudication_id=disputed.pk, lead=lead, labels=["violating"])
    with pytest.raises(AdjudicationClosed):
        adjudication_decide(adjudication_id=disputed.pk, lead=UserFactory(), labels=["not_violating"])
    assert GoldLabel.objects.count() == 1


def test_lead_cannot_choose_a_label_outside_the_schema(disputed, lead) -> None:
    with pytest.raises(ValidationError):
        adjudication_decide(adjudication_id=disputed.pk, lead=lead, labels=["maybe"])


def test_send_back_reopens_for_the_same_reviewers(disputed, lead) -> None:
    first, second = (a.reviewer for a in disputed.task.annotations.order_by("created_at"))
    disputed.task.queue.members.add(first, second)
    task = adjudication_send_back(adjudication_id=disputed.pk, lead=lead, note="check the context turn")
    assert (task.status, task.required_annotations, task.annotation_count) == (TaskStatus.OPEN, 2, 0)
    assert task_claim_next(reviewer=UserFactory(), queue=task.queue) is None  # a third reviewer: nothing
    for reviewer in (first, second):
        assert task_claim_next(reviewer=reviewer, queue=task.queue).task.pk == task.pk
        annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
    assert gold_current(item_id=task.item_id, policy_id=task.policy_id).labels == ["violating"]


def test_send_back_needs_a_note(disputed, lead) -> None:
    with pytest.raises(ValidationError):
        adjudication_send_back(adjudication_id=disputed.pk, lead=lead, note=" ")


def test_bulk_confirm_only_where_all_annotations_agree(policy, queue, lead) -> None:
    queue.auto_gold = False
    queue.save()
    agreed = ReviewTaskFactory(policy=policy, queue=queue, priority=2)
    answer(agreed, ["violating"])
    escalated = ReviewTaskFactory(policy=policy, queue=queue, priority=1)
    reviewer = UserFactory()
    task_claim_next(reviewer=reviewer, queue=queue)
    task_escalate(task_id=escalated.pk, reviewer=reviewer, note="unsure")
    made = adjudications_confirm_agreed(
        adjudication_ids=list(Adjudication.objects.values_list("pk", flat=True)), lead=lead
    )
    assert [g.item_id for g in made] == [agreed.item_id]
    assert Adjudication.objects.get(task=escalated).status == "open"


def test_correction_is_a_new_version_and_history_is_kept(disputed, lead) -> None:
    first = adjudication_decide(adjudication_id=disputed.pk, lead=lead, labels=["violating"])
    second = gold_record(
        item_id=first.item_id,
        policy_version=first.policy_version,
        labels=["not_violating"],
        source=GoldSource.ADJUDICATION,
        actor=Actor.of(lead),
        adjudicator=lead,
        note="guideline clarified",
    )
    assert (second.version, second.supersedes) == (2, first)
    assert gold_current(item_id=first.item_id, policy_id=first.policy_id) == second
    assert list(
        GoldLabel.objects.filter(item_id=first.item_id).values_list("version", flat=True).order_by("version")
    ) == [1, 2]
