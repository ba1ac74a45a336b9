"""Likely label errors among gold labels: confident learning over model probabilities.

Gold labels are checked against a model's probabilities with `cleanlab` (Northcutt et al.,
"Confident Learning", JAIR 2021): `cleanlab.filter.find_label_issues` flags the labels that the
per-class confident joint says are likely wrong, and `cleanlab.rank.get_label_quality_scores`
(self-confidence: the model's probability of the given label) ranks them, most suspicious first.
The top ones go back to reviewers as `reason=label_error` tasks; what they decide becomes a new
gold version through the ordinary consensus path.

Where the probabilities come from (the caller must say):
- `probabilities={item_id: {label: p, ...}}`: out-of-fold predictions of the active-learning
  head (`activelearning.services.out_of_fold`: each item scored by a head that never trained on
  it — in-sample probabilities would simply agree with the labels they were fitted to). This is
  how a policy's gold is checked by default (`manage.py find_label_errors`). Labels are the
  current policy version's; every class of the schema is modelled.
- `model_name=...`: the stored scores of one named *upstream* model, the newest per item. Refused
  for the models this product trains (`al-<policy>`, see `check_upstream_model`): they were
  trained on these very gold labels, so their scores are in-sample. Assumption: a decision's
  `score` is P(the policy's first label), the violating label ("violating", "toxic", "abusive" —
  the convention every schema here follows; pass `positive_label` to name another). A scalar can
  only separate that label from the rest, so with a schema of more than two labels the check is
  one-vs-rest: a gold label other than the positive one counts as "not <positive>", and a
  suspicious "needs_context" gold label is suggested as "violating" or "not violating", never as
  another specific label.

Only single-label gold is checked; gold labels already re-reviewed for a label error are not
flagged again (people looked at the model's objection and decided).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from reviewapp.audit import Actor, audit_record
from reviewapp.models import ModelDecision, Queue, TaskReason

from ..models import GoldLabel, Policy
from .relabel import gold_current_labels, gold_with_pending_review, review_tasks_open

MIN_GOLD_LABELS = 10  # below this the per-class thresholds of confident learning mean nothing
# The name prefix of the models this product trains on gold (`ModelVersion.model_name` is
# "al-<policy key>"); their decisions come back through ingest like any upstream model's.
TRAINED_ON_GOLD_PREFIX = "al-"


def check_upstream_model(model_name: str | None) -> str:
    """The upstream model whose stored scores may check gold; ValidationError for none or one trained on gold."""
    if not model_name:
        raise ValidationError(
            "Name the upstream model whose stored scores to use, or check with out-of-fold probabilities."
        )
    if model_name.startswith(TRAINED_ON_GOLD_PREFIX):
        raise ValidationError(
            f"{model_name!r} is a model this product trains on gold labels: its scores agree with the labels "
            "it learnt, wrong ones included. Check with out-of-fold probabilities instead."
        )
    return model_name


@dataclass(frozen=True)
class LabelIssue:
    gold_id: int
    item_id: int
    given: str  # the gold label
    suggested: str  # the class the model finds most likely
    quality: float  # cleanlab label quality (self-confidence) in [0, 1]; low = likely wrong
    p_given: float  # the model's probability of the given label's class


@dataclass(frozen=True)
class _Problem:
    golds: list[GoldLabel]
    classes: list[str]
    labels: list[int]  # class index of each gold label
    pred_probs: list[list[float]]


def label_errors_find(
    *,
    policy: Policy,
    top_k: int | None = None,
    probabilities: Mapping[int, Mapping[str, float]] | None = None,
    model_name: str | None = None,
    positive_label: str | None = None,
) -> list[LabelIssue]:
    """Current gold labels of `policy` that are likely wrong, most suspicious first.

    Give either `probabilities` (item id → {label: probability}, out of fold) or `model_name`
    (an upstream model's stored scores); see the module docstring. ValidationError for neither, or
    for a model trained on gold. Gold labels without a probability are not checked.
    Returns at most `top_k` issues; none when fewer than MIN_GOLD_LABELS labels can be checked
    or only one class occurs. Reads only.
    """
    problem = _problem(policy, probabilities, model_name, positive_label)
    if problem is None:
        return []
    import numpy as np
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(problem.labels, dtype=int)
    pred_probs = np.asarray(problem.pred_probs, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about small classes; the caller sees the result
        flagged = find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence", n_jobs=1)
        quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    issues = [
        LabelIssue(
            gold_id=problem.golds[i].pk,
            item_id=problem.golds[i].item_id,
            given=problem.golds[i].labels[0],
            suggested=problem.classes[int(np.argmax(pred_probs[i]))],
            quality=float(quality[i]),
            p_given=float(pred_probs[i, labels[i]]),
        )
        for i in flagged
    ]
    return issues[:top_k] if top_k is not None else issues


def _problem(
    policy: Policy,
    probabilities: Mapping[int, Mapping[str, float]] | None,
    model_name: str | None,
    positive_label: str | None,
) -> _Problem | None:
    version = policy.current_version()
    if version is None:
        raise ValidationError(f"Policy {policy.key!r} has no version in force.")
    schema = version.label_values
    golds = [
        gold
        for gold in gold_current_labels(policy=policy).exclude(task__reason=TaskReason.LABEL_ERROR).order_by("pk")
        if len(gold.labels) == 1
    ]
    if probabilities is not None:
        problem = _from_probabilities(golds, schema, probabilities)
    else:
        model_name = check_upstream_model(model_name)
        positive = positive_label or schema[0]
        if positive not in schema:
            raise ValidationError(f"{positive!r} is not a label of {version}.")
        problem = _from_scores(golds, schema, positive, _stored_scores(policy, golds, model_name))
    if len(problem.labels) < MIN_GOLD_LABELS or len(set(problem.labels)) < 2:
        return None
    return problem


def _from_probabilities(
    golds: list[GoldLabel], schema: list[str], probabilities: Mapping[int, Mapping[str, float]]
) -> _Problem:
    problem = _Problem([], schema, [], [])
    for gold in golds:
        given = gold.labels[0]
        row = probabilities.get(gold.item_id)
        if row is None or given not in schema:
            continue
        values = [max(float(row.get(label, 0.0)), 0.0) for label in schema]
        total = sum(values)
        if total <= 0:
            continue
        problem.golds.append(gold)
        problem.labels.append(schema.index(given))
        problem.pred_probs.append([value / total for value in values])
    return problem


def _from_scores(golds: list[GoldLabel], schema: list[str], positive: str, scores: dict[int, float]) -> _Problem:
    """Two classes from a scalar score: [positive, the other label or "not <positive>"]."""
    others = [label for label in schema if label != positive]
    negative = others[0] if len(others) == 1 else f"not {positive}"
    problem = _Problem([], [positive, negative], [], [])
    for gold in golds:
        score = scores.get(gold.item_id)
        if score is None or gold.labels[0] not in schema:
            continue
        problem.golds.append(gold)
        problem.labels.append(0 if gold.labels[0] == positive else 1)
        problem.pred_probs.append([score, 1.0 - score])
    return problem


def _stored_scores(policy: Policy, golds: list[GoldLabel], model_name: str) -> dict[int, float]:
    """item id → score of the newest stored decision of `model_name` under `policy`."""
    decisions = ModelDecision.objects.filter(
        policy=policy, model_name=model_name, item_id__in=[gold.item_id for gold in golds]
    )
    newest = decisions.order_by("item_id", "-received_at", "-id").distinct("item_id")
    return dict(newest.values_list("item_id", "score"))


@dataclass(frozen=True)
class LabelErrorsQueued:
    candidates: list[LabelIssue]  # every issue found, ranked
    already_queued: int  # issues whose gold label was sent for re-review before
    task_ids: list[int]


def label_errors_queue(
    *,
    policy: Policy,
    queue: Queue,
    top_k: int,
    actor: Actor,
    probabilities: Mapping[int, Mapping[str, float]] | None = None,
    model_name: str | None = None,
    positive_label: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> LabelErrorsQueued:
    """Open `reason=label_error` tasks in `queue` for the `top_k` most suspicious gold labels.

    Idempotent: a gold label already sent for this re-review (task open, with a lead, or done)
    is skipped and the next candidate taken. Tasks are ranked by suspicion (lower label quality,
    higher priority). One transaction; audit: `task.created` per task and one
    `label_errors.queued` summary, which records `provenance` (what produced the probabilities,
    e.g. the out-of-fold run) or the upstream model.
    """
    if top_k < 1:
        raise ValidationError("top_k must be at least 1.")
    candidates = label_errors_find(
        policy=policy, probabilities=probabilities, model_name=model_name, positive_label=positive_label
    )
    by_gold = {issue.gold_id: issue for issue in candidates}
    golds = GoldLabel.objects.filter(pk__in=list(by_gold))
    pending = set(gold_with_pending_review(golds, reason=TaskReason.LABEL_ERROR).values_list("pk", flat=True))
    chosen_ids = [issue.gold_id for issue in candidates if issue.gold_id not in pending][:top_k]
    chosen = golds.filter(pk__in=chosen_ids).select_related("policy", "item", "task")
    with transaction.atomic():
        task_ids = review_tasks_open(
            chosen,
            queue=queue,
            reason=TaskReason.LABEL_ERROR,
            actor=actor,
            urgency={gold_id: 2.0 - by_gold[gold_id].quality for gold_id in chosen_ids},
        )
        if task_ids:
            audit_record(
                actor=actor,
                action="label_errors.queued",
                object_type="policy",
                object_id=policy.pk,
                after={
                    "queue": queue.slug,
                    "tasks": len(task_ids),
                    "candidates": len(candidates),
                    "already_queued": len(pending),
                    "probabilities": _provenance(probabilities, provenance, model_name),
                    "gold_ids": chosen_ids,
                },
            )
    return LabelErrorsQueued(candidates=candidates, already_queued=len(pending), task_ids=task_ids)


def _provenance(
    probabilities: Mapping[int, Mapping[str, float]] | None,
    provenance: Mapping[str, Any] | None,
    model_name: str | None,
) -> dict[str, Any]:
    if probabilities is None:
        return {"source": "upstream model scores", "model_name": model_name}
    return {"source": "given", **(provenance or {})}
