"""Likely label errors: confident learning over given (out-of-fold) probabilities or a named upstream model's scores."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.models import GoldSource
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_record
from labeling.services.label_errors import label_errors_find, label_errors_queue
from labeling.services.relabel import gold_current_labels
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ModelDecision, ReviewTask, TaskReason
from reviewapp.services.claims import task_claim_next
from tests.factories import ContentItemFactory, PolicyFactory, PolicyVersionFactory, QueueFactory, UserFactory

V, N, C = "violating", "not_violating", "needs_context"
N_EACH = 20


def make_gold(policy, label: str, score: float | None):  # type: ignore[no-untyped-def]
    """An item with consensus gold `label` and, when given, a stored model score."""
    item = ContentItemFactory()
    gold_record(
        item_id=item.pk,
        policy_version=policy.current_version(),
        labels=[label],
        source=GoldSource.CONSENSUS,
        actor=SYSTEM,
    )
    if score is not None:
        ModelDecision.objects.create(
            item=item,
            policy=policy,
            model_name="clf",
            model_version="1",
            score=score,
            routing_outcome="review",
            sampling_propensity=1.0,
        )
    return item


def spread(low: float, high: float) -> list[float]:
    return [low + (high - low) * i / (N_EACH - 1) for i in range(N_EACH)]


@pytest.fixture
def flipped(policy):  # type: ignore[no-untyped-def]
    """20 violating and 20 not-violating gold labels the model agrees with, and 3 it confidently contradicts."""
    for score in spread(0.7, 0.99):
        make_gold(policy, V, score)
    for score in spread(0.01, 0.3):
        make_gold(policy, N, score)
    return {make_gold(policy, N, 0.985).pk: V, make_gold(policy, N, 0.97).pk: V, make_gold(policy, V, 0.02).pk: N}


def test_confidently_contradicted_gold_ranks_first(policy, flipped) -> None:
    issues = label_errors_find(policy=policy, top_k=10, model_name="clf")
    assert {issue.item_id for issue in issues[:3]} == set(flipped)
    assert [issue.quality for issue in issues] == sorted(issue.quality for issue in issues)
    for issue in issues[:3]:
        assert issue.suggested == flipped[issue.item_id] != issue.given
        assert issue.quality == pytest.approx(issue.p_given) and issue.quality < 0.05
    assert len(label_errors_find(policy=policy, top_k=2, model_name="clf")) == 2


def test_top_label_errors_go_to_a_review_queue_once(policy, flipped) -> None:
    queue = QueueFactory(slug="label-errors")
    queued = label_errors_queue(policy=policy, queue=queue, top_k=3, actor=SYSTEM, model_name="clf")
    tasks = ReviewTask.objects.filter(pk__in=queued.task_ids)
    assert {task.item_id for task in tasks} == set(flipped)
    assert {task.reason for task in tasks} == {TaskReason.LABEL_ERROR}
    by_item = {task.item_id: task.priority for task in tasks}
    ranked = [issue.item_id for issue in queued.candidates[:3]]
    assert [by_item[item] for item in ranked] == sorted(by_item.values(), reverse=True)  # most suspicious first
    assert AuditEvent.objects.filter(action="label_errors.queued").count() == 1

    again = label_errors_queue(policy=policy, queue=queue, top_k=3, actor=SYSTEM, model_name="clf")
    assert again.already_queued == 3
    assert ReviewTask.objects.filter(reason=TaskReason.LABEL_ERROR).count() == 3 + len(again.task_ids)
    assert not set(again.task_ids) & set(queued.task_ids)
    assert not {t.item_id for t in ReviewTask.objects.filter(pk__in=again.task_ids)} & set(flipped)


def test_gold_confirmed_by_a_label_error_review_is_not_flagged_again(policy, flipped, settings) -> None:
    settings.UNDO_WINDOW_SECONDS = 0
    queue = QueueFactory(slug="label-errors")
    reviewer = UserFactory(username="second-look")
    queue.members.add(reviewer)
    label_errors_queue(policy=policy, queue=queue, top_k=3, actor=SYSTEM, model_name="clf")
    while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
        kept = gold_current_labels(policy=policy).get(item_id=claim.task.item_id).labels
        annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=kept)
    confirmed = gold_current_labels(policy=policy).filter(item_id__in=flipped)
    assert {(g.version, g.task.reason) for g in confirmed} == {(2, TaskReason.LABEL_ERROR)}
    assert not {issue.item_id for issue in label_errors_find(policy=policy, model_name="clf")} & set(flipped)


def test_probabilities_can_be_passed_in_instead_of_stored_scores(flipped, policy) -> None:
    # e.g. the active-learning classifier's out-of-fold predictions, by item id.
    stored = dict(ModelDecision.objects.values_list("item_id", "score"))
    probabilities = {item_id: {V: score, N: 1 - score} for item_id, score in stored.items()}
    ModelDecision.objects.update(score=0.5)  # stored scores no longer say anything
    assert not label_errors_find(policy=policy, top_k=3, model_name="clf")
    issues = label_errors_find(policy=policy, top_k=3, probabilities=probabilities)
    assert {issue.item_id for issue in issues} == set(flipped)


def test_a_three_label_schema_uses_every_class_with_probabilities_and_one_vs_rest_with_scores(db) -> None:
    policy = PolicyFactory(key="harassment-3", version=None)
    labels = [{"value": value, "title": value} for value in (V, C, N)]
    PolicyVersionFactory(policy=policy, label_schema={"labels": labels, "allow_multiple": False})
    probabilities = {}
    for label, row in ((V, [0.9, 0.05, 0.05]), (C, [0.1, 0.8, 0.1]), (N, [0.05, 0.05, 0.9])):
        for _ in range(12):
            probabilities[make_gold(policy, label, score=row[0]).pk] = dict(zip((V, C, N), row, strict=True))
    wrong = make_gold(policy, C, score=0.99)
    probabilities[wrong.pk] = {V: 0.02, C: 0.01, N: 0.97}

    issues = label_errors_find(policy=policy, top_k=1, probabilities=probabilities)
    assert [(i.item_id, i.given, i.suggested) for i in issues] == [(wrong.pk, C, N)]
    # A stored score is P(violating) only: the same gold label is suspicious as "not violating" vs violating.
    issues = label_errors_find(policy=policy, top_k=1, model_name="clf")
    assert [(i.item_id, i.given, i.suggested) for i in issues] == [(wrong.pk, C, V)]


def test_too_few_gold_labels_with_scores_find_nothing(policy) -> None:
    for score in (0.9, 0.8, 0.1):
        make_gold(policy, V, score)
    make_gold(policy, N, None)  # no score: not checked
    assert label_errors_find(policy=policy, model_name="clf") == []


def test_find_label_errors_command_ranks_and_queues_by_a_named_upstream_model(policy, flipped) -> None:
    QueueFactory(slug="label-errors")
    out = io.StringIO()
    upstream = ("--source", "upstream", "--model", "clf")
    call_command("find_label_errors", "--policy", policy.key, "--top-k", "3", *upstream, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["rank", "item", "gold", "quality", "given", "→", "suggested"]
    assert {int(line.split()[1]) for line in lines[1:4]} == set(flipped)
    assert not ReviewTask.objects.exists()
    out = io.StringIO()
    call_command(
        "find_label_errors", "--policy", policy.key, "--top-k", "3", "--queue", "label-errors", *upstream, stdout=out
    )
    assert "3 label_error tasks opened in label-errors" in out.getvalue()
    event = AuditEvent.objects.get(action="label_errors.queued")
    assert event.after["probabilities"] == {"source": "upstream model scores", "model_name": "clf"}


def test_scores_of_a_model_trained_on_gold_are_refused(policy, flipped) -> None:
    # This product's own models come back through ingest as "al-<policy>": they learnt these labels.
    ModelDecision.objects.update(model_name=f"al-{policy.key}")
    with pytest.raises(ValidationError, match="trains on gold labels"):
        label_errors_find(policy=policy, model_name=f"al-{policy.key}")
    with pytest.raises(CommandError, match="out-of-fold probabilities instead"):
        call_command("find_label_errors", "--policy", policy.key, "--source", "upstream", "--model", "al-x")
    assert not ReviewTask.objects.exists()


def test_stored_scores_are_used_only_for_a_named_model(policy, flipped) -> None:
    with pytest.raises(ValidationError, match="Name the upstream model"):
        label_errors_find(policy=policy)
    with pytest.raises(CommandError, match="Name the upstream model"):
        call_command("find_label_errors", "--policy", policy.key, "--source", "upstream")
    assert label_errors_find(policy=policy, model_name="another-model") == []  # it scored nothing here
