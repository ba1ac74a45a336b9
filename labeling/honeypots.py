"""Honeypots: items with a known gold label, served like any other, to measure reviewer accuracy."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Q

from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.db import db_now
from reviewapp.models import Queue, ReviewTask, TaskReason, TaskStatus
from reviewapp.services.ingest import TaskSpec, insert_tasks

from .models import Annotation, GoldLabel, HoneypotCheck


def honeypots_top_up(*, queue: Queue, actor: Actor = SYSTEM, limit: int = 100) -> int:
    """Keep about `queue.honeypot_rate` of the queue's open tasks as honeypots; return how many were added.

    Candidates are current gold labels of the queue's policies (policies that already have tasks in
    it) whose item has no open task in the queue. Their priority is the median of the queue's open
    tasks, so ordering does not give them away.
    """
    if queue.honeypot_rate <= 0:
        return 0
    open_tasks = ReviewTask.objects.filter(queue=queue, status=TaskStatus.OPEN)
    counts = open_tasks.aggregate(total=Count("pk"), honeypots=Count("pk", filter=Q(reason=TaskReason.HONEYPOT)))
    real = counts["total"] - counts["honeypots"]
    wanted = int(real * queue.honeypot_rate / (1 - queue.honeypot_rate)) - counts["honeypots"]
    if wanted <= 0:
        return 0
    policies = ReviewTask.objects.filter(queue=queue).values("policy_id").distinct()
    candidates = list(
        GoldLabel.objects.filter(policy_id__in=policies, superseded_by__isnull=True)
        .exclude(item_id__in=open_tasks.values("item_id"))
        .order_by("?")[: min(wanted, limit)]
    )
    priorities = sorted(open_tasks.values_list("priority", flat=True))
    median = priorities[len(priorities) // 2] if priorities else 1.0
    with transaction.atomic():
        specs = [
            TaskSpec(item_id=g.item_id, policy_id=g.policy_id, queue=queue, reason=TaskReason.HONEYPOT, priority=median)
            for g in candidates
        ]
        created = insert_tasks(specs, actor=actor)
        by_item = {(g.item_id, g.policy_id): g for g in candidates}
        HoneypotCheck.objects.bulk_create(
            HoneypotCheck(task_id=task_id, gold=by_item[(spec.item_id, spec.policy_id)]) for spec, task_id in created
        )
    return len(created)


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
    return check


@dataclass(frozen=True)
class HoneypotAccuracy:
    reviewer_id: int
    policy_id: int
    answered: int
    accuracy: float


def honeypot_accuracy(*, policy_id: int | None = None) -> list[HoneypotAccuracy]:
    """Per reviewer (and policy) share of honeypots answered correctly."""
    rows = HoneypotCheck.objects.filter(correct__isnull=False)
    if policy_id is not None:
        rows = rows.filter(gold__policy_id=policy_id)
    stats = rows.values("reviewer_id", "gold__policy_id").annotate(
        n=Count("pk"), right=Count("pk", filter=Q(correct=True))
    )
    return [HoneypotAccuracy(s["reviewer_id"], s["gold__policy_id"], s["n"], s["right"] / s["n"]) for s in stats]
