"""Consensus rules, resolution after the undo window, adaptive redundancy, gold provenance."""

from __future__ import annotations

import uuid

import pytest

from labeling.models import Adjudication, AdjudicationReason, GoldLabel, GoldSource, ReliabilityFit, ReviewerReliability
from labeling.services.annotations import SubmissionRejected, annotation_retract, annotation_submit
from labeling.services.consensus import consensus_of, task_resolve
from reviewapp.models import AuditEvent, ModelDecision, ReviewTask, TaskStatus
from reviewapp.services.claims import task_claim_next
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory

V, N = ("violating",), ("not_violating",)


@pytest.mark.parametrize(
    ("votes", "rule", "margin", "agreed", "labels"),
    [
        ([V, V, V], "unanimous", 0, True, V),
        ([V, V, N], "unanimous", 0, False, V),
        ([V, V, N], "majority", 0, True, V),
        ([V, N], "majority", 0, False, V),  # a tie is not a majority
        ([V, V, N], "majority", 0.4, False, V),  # margin 1/3 does not exceed 0.4
        ([V, V, V, N], "majority", 0.4, True, V),  # margin 1/2 does
        ([V], "majority", 0, True, V),
    ],
)
def test_consensus_rules(votes, rule, margin, agreed, labels) -> None:  # type: ignore[no-untyped-def]
    outcome = consensus_of(votes, rule=rule, min_margin=margin)
    assert (outcome.agreed, outcome.labels) == (agreed, labels)


def test_weighted_rule_trusts_the_reliable_reviewer() -> None:
    reliable = {
        "violating": {"violating": 0.97, "not_violating": 0.03},
        "not_violating": {"violating": 0.03, "not_violating": 0.97},
    }
    noisy = {
        "violating": {"violating": 0.55, "not_violating": 0.45},
        "not_violating": {"violating": 0.45, "not_violating": 0.55},
    }
    outcome = consensus_of(
        [V, N, N], rule="weighted", weights={1: reliable, 2: noisy, 3: noisy}, voters=[1, 2, 3], min_confidence=0.8
    )
    assert outcome.labels == V and outcome.agreed and outcome.confidence > 0.9


@pytest.fixture
def reviewers(queue):  # type: ignore[no-untyped-def]
    users = [UserFactory(username=f"r{i}") for i in range(4)]
    queue.members.add(*users)
    return users


@pytest.fixture
def no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


def label(task, reviewer, labels, severity=""):  # type: ignore[no-untyped-def]
    claim = task_claim_next(reviewer=reviewer, queue=task.queue)
    assert claim is not None and claim.task.pk == task.pk
    return annotation_submit(
        task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels, severity=severity
    )


@pytest.mark.usefixtures("no_undo_window")
def test_agreement_makes_gold_with_provenance(policy, queue, reviewers) -> None:
    queue.required_annotations = 2
    queue.save()
    item = ContentItemFactory()
    decision = ModelDecision.objects.create(
        item=item,
        policy=policy,
        model_name="m",
        model_version="1",
        score=0.95,
        routing_outcome="auto_action",
        audit_sampled=True,
        sampling_propensity=0.05,
    )
    task = ReviewTaskFactory(
        policy=policy, queue=queue, item=item, decision=decision, reason="audit_sample", sampling_propensity=0.05
    )
    first = label(task, reviewers[0], ["violating"], "high")
    second = label(task, reviewers[1], ["violating"], "high")
    gold = GoldLabel.objects.get()
    assert (gold.labels, gold.source, gold.version, gold.severity) == (["violating"], GoldSource.CONSENSUS, 1, "high")
    assert sorted(gold.annotation_ids) == sorted([first.annotation.pk, second.annotation.pk])
    assert (gold.n_annotations, gold.agreement) == (2, 1.0)
    assert (gold.route, gold.routing_outcome, gold.sampling_propensity) == ("audit_sample", "auto_action", 0.05)
    assert gold.policy_version == policy.current_version()
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.resolved_at is not None
    assert AuditEvent.objects.filter(action="gold.created", item_id=item.pk).exists()


@pytest.mark.usefixtures("no_undo_window")
def test_disagreement_goes_to_a_lead(policy, queue, reviewers) -> None:
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    label(task, reviewers[0], ["violating"])
    label(task, reviewers[1], ["not_violating"])
    adjudication = Adjudication.objects.get()
    assert adjudication.reason == AdjudicationReason.DISAGREEMENT and adjudication.status == "open"
    task.refresh_from_db()
    assert task.status == TaskStatus.ESCALATED and not GoldLabel.objects.exists()


@pytest.mark.usefixtures("no_undo_window")
def test_adaptive_queue_adds_reviewers_only_on_disagreement(policy, queue, reviewers) -> None:
    queue.required_annotations, queue.adaptive, queue.max_annotations = 1, True, 3
    queue.save()
    agreed = ReviewTaskFactory(policy=policy, queue=queue, priority=5)
    label(agreed, reviewers[0], ["violating"])
    assert GoldLabel.objects.filter(item=agreed.item).exists()  # one annotation: nothing to disagree with

    queue.required_annotations = 2
    queue.save()
    split = ReviewTaskFactory(policy=policy, queue=queue, priority=4)
    label(split, reviewers[0], ["violating"])
    label(split, reviewers[1], ["not_violating"])
    split.refresh_from_db()
    assert (split.status, split.required_annotations) == (TaskStatus.OPEN, 3)
    label(split, reviewers[2], ["violating"])  # the third breaks the tie
    gold = GoldLabel.objects.get(item=split.item)
    assert gold.labels == ["violating"] and gold.n_annotations == 3 and gold.agreement == pytest.approx(2 / 3)


@pytest.mark.usefixtures("no_undo_window")
def test_queue_without_auto_gold_asks_lead_to_confirm(policy, queue, reviewers) -> None:
    queue.auto_gold = False
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    label(task, reviewers[0], ["violating"])
    adjudication = Adjudication.objects.get()
    assert (adjudication.reason, adjudication.proposed_labels) == (AdjudicationReason.CONFIRM, ["violating"])


def store_reliabilities(policy, reviewers, *, passed: bool) -> None:  # type: ignore[no-untyped-def]
    """One careful reviewer and two noisy ones, from a Dawid–Skene fit that passed or failed its checks."""
    labels = ["violating", "not_violating"]
    fit = ReliabilityFit.objects.create(
        policy=policy, passed=passed, problems=[] if passed else ["it labelled 100% of items violating"],
        n_labels=1500, n_items=500, n_reviewers=3, iterations=40, converged=True,
        labels=labels, priors=[0.3, 0.7], vote_shares=[0.3, 0.7],
    )  # fmt: skip
    ReviewerReliability.objects.create(
        reviewer=reviewers[0],
        policy=policy,
        fit=fit,
        labels=labels,
        confusion=[[0.98, 0.02], [0.02, 0.98]],
        accuracy=0.98,
        n_items=500,
    )
    for noisy in reviewers[1:3]:
        ReviewerReliability.objects.create(
            reviewer=noisy,
            policy=policy,
            fit=fit,
            labels=labels,
            confusion=[[0.6, 0.4], [0.4, 0.6]],
            accuracy=0.6,
            n_items=500,
        )


@pytest.mark.usefixtures("no_undo_window")
@pytest.mark.parametrize("passed", [True, False])
def test_weighted_queue_uses_reliabilities_only_from_a_fit_that_passed(policy, queue, reviewers, passed) -> None:
    queue.required_annotations, queue.consensus_rule, queue.min_confidence = 3, "weighted", 0.9
    queue.save()
    store_reliabilities(policy, reviewers, passed=passed)
    task = ReviewTaskFactory(policy=policy, queue=queue)
    label(task, reviewers[0], ["violating"])
    label(task, reviewers[1], ["not_violating"])
    label(task, reviewers[2], ["not_violating"])
    if passed:  # the careful reviewer outweighs the two noisy ones
        assert GoldLabel.objects.get().labels == ["violating"]
    else:  # every voter counts as typical (0.8): 2 against 1 reaches only 0.8 < 0.9, so a lead decides
        assert not GoldLabel.objects.exists()
        assert Adjudication.objects.get(task=task).reason == AdjudicationReason.LOW_CONFIDENCE


def test_resolution_waits_for_the_undo_window(policy, queue, reviewers, settings) -> None:
    settings.UNDO_WINDOW_SECONDS = 60
    task = ReviewTaskFactory(policy=policy, queue=queue)
    result = label(task, reviewers[0], ["violating"])
    assert task_resolve(task_id=task.pk) == "skipped"  # still undoable
    annotation_retract(annotation_id=result.annotation.pk, reviewer=reviewers[0])
    result = annotation_submit(
        task_id=task.pk, reviewer=reviewers[0], submission_id=uuid.uuid4(), labels=["not_violating"]
    )
    assert task_resolve(task_id=task.pk, force=True) == "gold"
    assert GoldLabel.objects.get().labels == ["not_violating"]
    with pytest.raises(SubmissionRejected, match="already been decided"):
        annotation_retract(annotation_id=result.annotation.pk, reviewer=reviewers[0])
    assert task_resolve(task_id=task.pk, force=True) == "skipped"  # idempotent


def test_gold_labels_cannot_be_edited(policy, queue, reviewers, settings) -> None:
    from django.db import ProgrammingError, transaction

    settings.UNDO_WINDOW_SECONDS = 0
    task = ReviewTaskFactory(policy=policy, queue=queue)
    label(task, reviewers[0], ["violating"])
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        GoldLabel.objects.update(labels=["not_violating"])
    assert ReviewTask.objects.get(pk=task.pk).status == TaskStatus.COMPLETED
