"""Honeypots: items with a known gold label, served like any other, to measure reviewer accuracy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, F, Max, Min, OuterRef, Q, QuerySet, Subquery

from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.db import db_now
from reviewapp.models import (
    ModelDecision,
    Queue,
    QueueKind,
    QueueStanding,
    ReviewTask,
    RoutingOutcome,
    StandingStatus,
    TaskReason,
    TaskStatus,
)
from reviewapp.services.standing import queue_standing_pause
from reviewapp.services.tasks import TaskSpec, review_task_open

from ..models import Annotation, AnnotationSource, GoldLabel, HoneypotCheck


def honeypots_top_up(*, queue: Queue, actor: Actor = SYSTEM, limit: int = 100) -> int:
    """Keep about `queue.honeypot_rate` of the queue's open tasks as honeypots; return how many were added.

    Candidates are current gold labels of the queue's policies (policies that already have tasks in
    it) whose item has no open task in the queue. A reviewer must not be able to tell one from live
    work (see reviewapp.projection), so each honeypot looks like the queue's live tasks:
    - its priority is the median of the queue's open tasks, so ordering does not give it away;
    - it shows its item's most recent model decision under the policy, as a live task shows its own
      (reviewapp.projection looks it up; the task itself keeps no decision, so gold provenance,
      resend answers and automation metrics never mistake a honeypot for the decision's routing);
    - on a queue that shows model scores, only candidates that look like its live work are used: with
      a decision whose score is inside the live tasks' range when most live tasks have a decision,
      without one when most do not (imported data). Fewer honeypots than wanted is the price of
      not serving one that stands out; blind queues show no model line, so any candidate will do;
    - on a queue that shows author history, it has an upstream author key exactly when most live
      tasks' items do (the workspace shows an author line only for items with one).
    """
    if queue.honeypot_rate <= 0 or queue.kind == QueueKind.APPEALS:
        # An appeals queue holds appeals only: each shows its user's statement and the contested
        # outcome, which a honeypot has not, so a honeypot there would stand out.
        return 0
    open_tasks = ReviewTask.objects.filter(queue=queue, status=TaskStatus.OPEN)
    counts = open_tasks.aggregate(total=Count("pk"), honeypots=Count("pk", filter=Q(reason=TaskReason.HONEYPOT)))
    real = counts["total"] - counts["honeypots"]
    wanted = int(real * queue.honeypot_rate / (1 - queue.honeypot_rate)) - counts["honeypots"]
    if wanted <= 0:
        return 0
    policies = ReviewTask.objects.filter(queue=queue).values("policy_id").distinct()
    latest = (
        ModelDecision.objects.filter(item_id=OuterRef("item_id"), policy_id=OuterRef("policy_id"))
        .exclude(routing_outcome=RoutingOutcome.SHADOW)
        .order_by("-received_at", "-pk")
    )
    pool = list(
        GoldLabel.objects.filter(policy_id__in=policies, superseded_by__isnull=True)
        .exclude(item_id__in=open_tasks.values("item_id"))
        .annotate(
            author_key=F("item__author_key"),
            latest_decision_id=Subquery(latest.values("pk")[:1]),
            latest_score=Subquery(latest.values("score")[:1]),
        )
        .order_by("?")[: min(wanted, limit) * CANDIDATE_POOL_FACTOR]
    )
    if not queue.blind_review:
        live = open_tasks.exclude(reason=TaskReason.HONEYPOT)
        looks_live = _live_look(live)
        pool = [g for g in pool if looks_live(g.latest_decision_id, g.latest_score)]
        if queue.show_author_history:
            # The workspace shows an author line only for items with an author key, so a honeypot
            # has one exactly when most live work does.
            authored = _mostly_authored(live)
            pool = [g for g in pool if bool(g.author_key) == authored]
    candidates = pool[: min(wanted, limit)]
    priorities = sorted(open_tasks.values_list("priority", flat=True))
    median = priorities[len(priorities) // 2] if priorities else 1.0
    with transaction.atomic():
        specs = [
            TaskSpec(
                item_id=g.item_id,
                policy_id=g.policy_id,
                queue=queue,
                reason=TaskReason.HONEYPOT,
                priority=median,
            )
            for g in candidates
        ]
        created = review_task_open(specs=specs, actor=actor)
        by_item = {(g.item_id, g.policy_id): g for g in candidates}
        HoneypotCheck.objects.bulk_create(
            HoneypotCheck(task_id=task_id, gold=by_item[(spec.item_id, spec.policy_id)]) for spec, task_id in created
        )
    return len(created)


# Gold labels drawn at random per honeypot wanted, among which to find ones that look like live work.
CANDIDATE_POOL_FACTOR = 5


def _mostly_authored(live_tasks: QuerySet[ReviewTask]) -> bool:
    """Whether at least half of the live tasks' items carry an upstream author key."""
    counts = live_tasks.aggregate(total=Count("pk"), authored=Count("pk", filter=~Q(item__author_key="")))
    return counts["authored"] * 2 >= counts["total"] > 0


def _live_look(live_tasks: QuerySet[ReviewTask]) -> Callable[[int | None, float | None], bool]:
    """A test of whether a honeypot with this (decision id, score) would look like the live tasks."""
    stats = live_tasks.aggregate(
        total=Count("pk"),
        with_decision=Count("pk", filter=Q(decision__isnull=False)),
        low=Min("decision__score"),
        high=Max("decision__score"),
    )
    if not stats["total"]:
        return lambda decision_id, score: True
    if stats["with_decision"] * 2 < stats["total"]:
        return lambda decision_id, score: decision_id is None
    low, high = stats["low"], stats["high"]
    return lambda decision_id, score: decision_id is not None and score is not None and low <= score <= high


def honeypot_score(*, task: ReviewTask, annotations: list[Annotation]) -> HoneypotCheck | None:
    """Score the answer to a honeypot task against its gold label (called when the task resolves)."""
    check = HoneypotCheck.objects.filter(task=task).select_related("gold").first()
    if check is None or not annotations:
        return None
    answer = annotations[0]
    check.reviewer_id = answer.reviewer_id
    check.annotation = answer
    check.correct = sorted(answer.labels) == sorted(check.gold.labels)
    check.answered_at = db_now()
    check.save(update_fields=["reviewer", "annotation", "correct", "answered_at"])
    audit_record(
        actor=SYSTEM,
        action="honeypot.scored",
        object_type="task",
        object_id=task.pk,
        item_id=task.item_id,
        after={"reviewer_id": answer.reviewer_id, "correct": check.correct},
    )
    honeypot_pause_check(queue=task.queue, reviewer=answer.reviewer)
    return check


def honeypot_pause_check(*, queue: Queue, reviewer: User) -> QueueStanding | None:
    """The queue's pause rule, run after each scored honeypot: when the reviewer's latest
    `queue.pause_window` honeypot answers here (a full window, counted since they were last
    admitted to live work: qualified or resumed) are right less often than
    `queue.pause_below_accuracy`, pause them automatically. Returns the paused standing, or None.

    Runs in the caller's transaction (the honeypot's resolution); the pause locks the standing row.
    """
    threshold = queue.pause_below_accuracy
    if threshold is None:
        return None
    standing = QueueStanding.objects.filter(queue=queue, reviewer=reviewer).first()
    if standing is not None and standing.status == StandingStatus.PAUSED:
        return None
    checks = HoneypotCheck.objects.filter(task__queue=queue, reviewer=reviewer, correct__isnull=False).exclude(
        annotation__source=AnnotationSource.LLM
    )
    if standing is not None:
        checks = checks.filter(answered_at__gt=standing.changed_at)
    window = list(checks.order_by("-answered_at", "-pk").values_list("correct", flat=True)[: queue.pause_window])
    if len(window) < queue.pause_window:
        return None
    right = sum(window)
    accuracy = right / len(window)
    if accuracy >= threshold:
        return None
    reason = (
        f"Automatic pause: {right} of your last {len(window)} known-answer checks in this queue were right "
        f"({accuracy:.0%}); the queue pauses reviewers below {threshold:.0%}. "
        "Pass the onboarding set to work here again."
    )
    return queue_standing_pause(queue=queue, reviewer=reviewer, reason=reason, actor=SYSTEM, automatic=True)


@dataclass(frozen=True)
class HoneypotAccuracy:
    reviewer_id: int
    policy_id: int
    answered: int
    accuracy: float


def honeypot_accuracy(*, policy_id: int | None = None, include_llm: bool = False) -> list[HoneypotAccuracy]:
    """Per reviewer (and policy) share of honeypots answered correctly; people's answers only
    unless `include_llm` (an LLM reviewer's honeypot accuracy is in `labeling.llm.services.reports`)."""
    rows = HoneypotCheck.objects.filter(correct__isnull=False)
    if not include_llm:
        rows = rows.exclude(annotation__source=AnnotationSource.LLM)
    if policy_id is not None:
        rows = rows.filter(gold__policy_id=policy_id)
    stats = rows.values("reviewer_id", "gold__policy_id").annotate(
        n=Count("pk"), right=Count("pk", filter=Q(correct=True))
    )
    return [HoneypotAccuracy(s["reviewer_id"], s["gold__policy_id"], s["n"], s["right"] / s["n"]) for s in stats]
