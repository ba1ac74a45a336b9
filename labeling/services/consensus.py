"""Consensus: turning a task's independent annotations into a gold label or a lead's decision.

A task whose required annotations are in is resolved once the undo window has closed (so a
reviewer's undo never has to fight a gold label): agreement makes gold (or a confirmation
request for a lead), disagreement asks for more reviewers on adaptive queues or goes to a lead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction

from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.db import db_now
from reviewapp.models import ConsensusRule, ReviewTask, TaskReason, TaskStatus
from reviewapp.services.tasks import review_task_escalate, review_task_reopen, review_task_resolve

from ..models import Adjudication, AdjudicationReason, Annotation, AnnotationSource, GoldSource
from .outcomes import outcome_overturns_notify
from .reliability import reliabilities_in_force

Vote = tuple[str, ...]  # a reviewer's label set, sorted, so multi-label answers compare as wholes


@dataclass(frozen=True)
class Consensus:
    agreed: bool
    labels: Vote | None  # the winning label set, if any
    agreement: float  # share of votes for the winning set
    confidence: float | None = None  # posterior of the winning set (weighted rule only)


def consensus_of(
    votes: Sequence[Vote],
    *,
    rule: str,
    min_margin: float = 0.0,
    min_confidence: float = 0.8,
    weights: Mapping[int, Mapping[str, Mapping[str, float]]] | None = None,
    voters: Sequence[int] = (),
    prior: Mapping[str, float] | None = None,
) -> Consensus:
    """Decide a set of votes under a queue's rule.

    unanimous: every vote is the same. majority: the most common vote beats the runner-up by more
    than `min_margin` of all votes (0 means a strict plurality). weighted: Dawid–Skene posterior
    of each single label given each voter's confusion matrix (`weights[voter][true][said]`) must
    reach `min_confidence`; voters without an estimate count as 0.8 accurate.
    """
    if not votes:
        return Consensus(False, None, 0.0)
    counts = Counter(votes).most_common()
    top, top_n = counts[0]
    runner_up = counts[1][1] if len(counts) > 1 else 0
    agreement = top_n / len(votes)
    if rule == ConsensusRule.UNANIMOUS:
        return Consensus(len(counts) == 1, top, agreement)
    if rule == ConsensusRule.WEIGHTED and all(len(v) == 1 for v in votes):
        label, confidence = _weighted(votes, voters, weights or {}, prior)
        return Consensus(confidence >= min_confidence, (label,), agreement, confidence)
    margin = (top_n - runner_up) / len(votes)
    return Consensus(top_n > runner_up and margin > min_margin, top, agreement)


def plurality_of(votes: Sequence[Vote]) -> Vote | None:
    """The vote strictly more common than every other one, or None (no votes, or a tie at the top).

    `consensus_of` still names a winner on a tie (the first vote counted) for the record; this is
    what a person may be offered as the default answer, which a tie must never decide.
    """
    counts = Counter(votes).most_common(2)
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def _weighted(
    votes: Sequence[Vote],
    voters: Sequence[int],
    weights: Mapping[int, Mapping[str, Mapping[str, float]]],
    prior: Mapping[str, float] | None,
) -> tuple[str, float]:
    classes = sorted({v[0] for v in votes} | set(prior or {}) | {c for w in weights.values() for c in w})
    posterior = {c: (prior or {}).get(c, 1.0 / len(classes)) for c in classes}
    for vote, voter in zip(votes, voters, strict=True):
        said = vote[0]
        matrix = weights.get(voter)
        for true in classes:
            if matrix and true in matrix:
                likelihood = matrix[true].get(said, 1e-3)
            else:
                likelihood = 0.8 if said == true else 0.2 / max(len(classes) - 1, 1)
            posterior[true] *= max(likelihood, 1e-6)
    total = sum(posterior.values())
    best = max(posterior, key=lambda c: posterior[c])
    return best, posterior[best] / total


def task_resolve(*, task_id: int, actor: Actor = SYSTEM, force: bool = False) -> str:
    """Take consensus on a completed task whose undo window has closed. Idempotent.

    Locks the task row. Returns what happened: 'gold', 'confirm', 'more_reviews', 'adjudication',
    'honeypot', or 'skipped' (not completed, already resolved, or the window is still open).
    """
    from .gold import gold_record
    from .honeypots import honeypot_score

    with transaction.atomic():
        # The queue's pre-label settings come along: they say whether an LLM's answer votes.
        task = (
            ReviewTask.objects.select_for_update(of=("self",))
            .select_related("queue", "decision", "queue__prelabels__reviewer")
            .get(pk=task_id)
        )
        now = db_now()
        window = timedelta(seconds=settings.UNDO_WINDOW_SECONDS)
        if task.status != TaskStatus.COMPLETED or task.resolved_at is not None:
            return "skipped"
        if not force and task.completed_at and now - task.completed_at < window:
            return "skipped"
        annotations = list(
            task.annotations.filter(retracted_at__isnull=True).select_related("policy_version").order_by("created_at")
        )
        if task.reason == TaskReason.HONEYPOT:
            # A honeypot checks the person who answered it; a machine's answer is never scored here.
            review_task_resolve(task=task, now=now)
            honeypot_score(task=task, annotations=[a for a in annotations if a.source != AnnotationSource.LLM])
            return "honeypot"
        annotations = voting_annotations(task, annotations)
        outcome = _consensus_for(task, annotations)
        if outcome.agreed and task.queue.auto_gold:
            version = max((a.policy_version for a in annotations), key=lambda v: v.number)
            source = GoldSource.APPEAL if task.reason == TaskReason.APPEAL else GoldSource.CONSENSUS
            gold = gold_record(
                item_id=task.item_id,
                policy_version=version,
                labels=list(outcome.labels or ()),
                source=source,
                actor=actor,
                task=task,
                annotations=annotations,
                severity=_common_severity(annotations, outcome.labels),
            )
            review_task_resolve(task=task, now=now)
            gold_follow_up(task=task, gold=gold)
            return "gold"
        if not outcome.agreed and task.queue.adaptive and task.required_annotations < task.queue.max_annotations:
            return _ask_more_reviewers(task, actor)
        reason = (
            AdjudicationReason.CONFIRM
            if outcome.agreed
            else (
                AdjudicationReason.LOW_CONFIDENCE if outcome.confidence is not None else AdjudicationReason.DISAGREEMENT
            )
        )
        adjudication_request(
            task=task,
            reason=reason,
            proposed=outcome.labels,
            confidence=outcome.confidence,
            actor=actor,
            resolved_at=now,
        )
        return "confirm" if outcome.agreed else "adjudication"


def voting_annotations(task: ReviewTask, annotations: list[Annotation]) -> list[Annotation]:
    """The annotations that vote in `task`'s consensus: the humans', plus the queue's pre-label LLM
    reviewer's where its settings count it (`QueuePrelabels.counts_toward_consensus`); any other
    machine-made annotation never votes.

    The LLM then votes beside the humans and is part of the gold label's provenance; it never
    fills a human's place, since a task completes on its human answers (the LLM's annotation is
    written without counting towards `annotation_count`).
    """
    humans = [a for a in annotations if a.source != AnnotationSource.LLM]
    try:
        prelabels = task.queue.prelabels  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return humans
    if not prelabels.counts_toward_consensus:
        return humans
    # The LLM's one live answer of (item, policy), whichever task it was written on.
    account_id = prelabels.reviewer.account_id
    machine = next((a for a in annotations if a.reviewer_id == account_id), None) or (
        Annotation.objects.filter(
            item_id=task.item_id,
            policy_id=task.policy_id,
            reviewer_id=account_id,
            source=AnnotationSource.LLM,
            retracted_at__isnull=True,
        )
        .select_related("policy_version")
        .first()
    )
    return [*humans, machine] if machine is not None else humans


def _consensus_for(task: ReviewTask, annotations: list[Annotation]) -> Consensus:
    votes = [tuple(sorted(a.labels)) for a in annotations]
    weights = {}
    if task.queue.consensus_rule == ConsensusRule.WEIGHTED:
        reviewer_ids = [a.reviewer_id for a in annotations]
        # Only a fit that passed its checks weighs votes; otherwise every voter counts as typical.
        for rel in reliabilities_in_force(policy_id=task.policy_id, reviewer_ids=reviewer_ids):
            weights[rel.reviewer_id] = {
                true: dict(zip(rel.labels, row, strict=True))
                for true, row in zip(rel.labels, rel.confusion, strict=True)
            }
    return consensus_of(
        votes,
        rule=task.queue.consensus_rule,
        min_margin=task.queue.min_margin,
        min_confidence=task.queue.min_confidence,
        weights=weights,
        voters=[a.reviewer_id for a in annotations],
    )


def _common_severity(annotations: list[Annotation], labels: Vote | None) -> str:
    severities = Counter(a.severity for a in annotations if a.severity and tuple(sorted(a.labels)) == labels)
    return severities.most_common(1)[0][0] if severities else ""


def _ask_more_reviewers(task: ReviewTask, actor: Actor) -> str:
    review_task_reopen(task=task, extra_annotations=task.extra_annotations + 1)
    audit_record(
        actor=actor,
        action="task.more_reviews",
        object_type="task",
        object_id=task.pk,
        item_id=task.item_id,
        before={"status": TaskStatus.COMPLETED},
        after={"status": TaskStatus.OPEN, "required_annotations": task.required_annotations},
    )
    return "more_reviews"


def adjudication_request(
    *,
    task: ReviewTask,
    reason: str,
    actor: Actor,
    proposed: Vote | None = None,
    confidence: float | None = None,
    note: str = "",
    resolved_at: datetime | None = None,
) -> Adjudication:
    """Put a task in front of policy leads; the caller holds the task row lock.

    `resolved_at`: when consensus sends it (the task's resolution is this adjudication).
    """
    before = review_task_escalate(task=task, resolved_at=resolved_at)
    adjudication = Adjudication.objects.create(
        task=task,
        reason=reason,
        proposed_labels=list(proposed) if proposed else None,
        confidence=confidence,
        note=note,
    )
    audit_record(
        actor=actor,
        action="adjudication.requested",
        object_type="task",
        object_id=task.pk,
        item_id=task.item_id,
        before={"status": before},
        after={"status": task.status, "reason": reason, "adjudication_id": adjudication.pk},
    )
    return adjudication


def gold_follow_up(*, task: ReviewTask, gold: object) -> None:
    """Hooks that follow a gold label made from a task: appeal outcomes, and telling reviewers
    whose answers a lead's decision or an appeal overturned."""
    from .appeals import appeal_conclude

    if task.reason == TaskReason.APPEAL:
        appeal_conclude(task=task, gold=gold)
    outcome_overturns_notify(gold=gold)


def tasks_resolve_due(*, limit: int = 500) -> int:
    """Resolve completed tasks whose undo window has closed; returns how many were resolved."""
    cutoff = db_now() - timedelta(seconds=settings.UNDO_WINDOW_SECONDS)
    due = list(
        ReviewTask.objects.filter(status=TaskStatus.COMPLETED, resolved_at__isnull=True, completed_at__lte=cutoff)
        .order_by("completed_at")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(task_resolve(task_id=task_id) != "skipped" for task_id in due)
