"""Consensus and LLM answers: ignored unless the queue's pre-label settings count them; then the
LLM votes beside the humans and never takes a human's place."""

from __future__ import annotations

import uuid

import pytest

from labeling.llm.models import QueuePrelabels
from labeling.models import Adjudication, GoldLabel, GoldSource, HoneypotCheck
from labeling.services.annotations import annotation_submit
from labeling.services.consensus import task_resolve
from reviewapp.models import ReviewTask, TaskStatus
from reviewapp.services.claims import task_claim_next
from tests.factories import ReviewTaskFactory, UserFactory
from tests.llm.prelabels_data import llm_annotation, llm_reviewer, prelabels_on

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def person(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="human")
    queue.members.add(user)
    return user


@pytest.fixture
def llm(policy):  # type: ignore[no-untyped-def]
    return llm_reviewer(policy)


def answer(task, reviewer, label):  # type: ignore[no-untyped-def]
    claim = task_claim_next(reviewer=reviewer, queue=task.queue)
    assert claim is not None and claim.task.pk == task.pk
    return annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label]).annotation


def test_an_llm_answer_does_not_vote_by_default(policy, queue, llm, person) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    llm_annotation(llm, task, "not_violating")
    human = answer(task, person, "violating")
    gold = GoldLabel.objects.get()
    assert (gold.labels, gold.annotation_ids, gold.n_annotations) == (["violating"], [human.pk], 1)


def test_settings_without_the_flag_keep_the_llm_out(policy, queue, llm, person) -> None:
    prelabels_on(queue, llm, counts=False)
    task = ReviewTaskFactory(policy=policy, queue=queue)
    llm_annotation(llm, task, "not_violating")
    answer(task, person, "violating")
    assert GoldLabel.objects.get().labels == ["violating"]


def test_with_the_flag_the_llm_votes_beside_the_human(policy, queue, llm, person) -> None:
    prelabels_on(queue, llm, counts=True)
    task = ReviewTaskFactory(policy=policy, queue=queue)
    machine = llm_annotation(llm, task, "not_violating")
    answer(task, person, "violating")
    # One human and the LLM disagree: a tie under the majority rule goes to a lead.
    assert not GoldLabel.objects.exists()
    assert Adjudication.objects.get(task=task).reason == "disagreement"

    agreed = ReviewTaskFactory(policy=policy, queue=queue)
    machine = llm_annotation(llm, agreed, "violating")
    human = answer(agreed, person, "violating")
    gold = GoldLabel.objects.get(item=agreed.item)
    assert (gold.source, gold.n_annotations) == (GoldSource.CONSENSUS, 2)
    assert sorted(gold.annotation_ids) == sorted([human.pk, machine.pk])


def test_the_llm_never_fills_a_human_slot(policy, queue, llm, person) -> None:
    queue.required_annotations = 2
    queue.max_annotations = 2
    queue.save()
    prelabels_on(queue, llm, counts=True)
    task = ReviewTaskFactory(policy=policy, queue=queue)
    llm_annotation(llm, task, "violating")
    answer(task, person, "violating")
    task.refresh_from_db()
    # One human of two: the LLM's answer does not complete the task, and nothing is resolved.
    assert (task.status, task.annotation_count) == (TaskStatus.OPEN, 1)
    assert task_resolve(task_id=task.pk, force=True) == "skipped"
    assert not GoldLabel.objects.exists()


def test_only_the_configured_llm_votes(policy, queue, llm, person) -> None:
    prelabels_on(queue, llm, counts=True)
    other = llm_reviewer(policy, name="other-llm")
    task = ReviewTaskFactory(policy=policy, queue=queue)
    llm_annotation(other, task, "not_violating")
    answer(task, person, "violating")
    assert GoldLabel.objects.get().annotation_ids == [a.pk for a in task.annotations.filter(reviewer=person)]


def test_a_honeypot_scores_the_human_even_after_the_llm_answered(policy, queue, llm, person) -> None:
    QueuePrelabels.objects.create(queue=queue, reviewer=llm, counts_toward_consensus=True)
    task = ReviewTaskFactory(policy=policy, queue=queue, reason="honeypot")
    gold = GoldLabel.objects.create(
        item=task.item,
        policy=policy,
        policy_version=policy.current_version(),
        labels=["violating"],
        source=GoldSource.HONEYPOT,
    )
    HoneypotCheck.objects.create(task=task, gold=gold)
    llm_annotation(llm, task, "not_violating")  # earlier than the human's answer
    answer(task, person, "violating")
    check = HoneypotCheck.objects.get()
    assert (check.reviewer_id, check.correct) == (person.pk, True)
    assert ReviewTask.objects.get(pk=task.pk).resolved_at is not None
