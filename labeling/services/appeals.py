"""Appeals: a user contests an outcome; reviewers look again in an appeals queue."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from reviewapp.audit import Actor, audit_record
from reviewapp.db import db_now
from reviewapp.models import ContentItem, ModelDecision, Queue, QueueKind, ReviewTask, RoutingOutcome, TaskReason
from reviewapp.services.tasks import TaskSpec, review_task_open

from ..models import Appeal, AppealStatus, GoldLabel, Policy
from ..signals import appeal_decided
from .gold import gold_current

APPEAL_PRIORITY = 10.0  # appeals are time-sensitive for the user: served before ordinary review


@dataclass(frozen=True)
class AppealOpened:
    appeal: Appeal
    created: bool


def appeal_open(
    *, source: str, external_id: str, policy_key: str, external_ref: str, statement: str, actor: Actor
) -> AppealOpened:
    """Reopen an item for review in the appeals queue. Idempotent by `external_ref`.

    The appealed outcome is the item's current gold label, or else the newest model decision's
    automatic action. Raises ValidationError naming what is missing.
    """
    existing = Appeal.objects.filter(external_ref=external_ref).first()
    if existing is not None:
        return AppealOpened(existing, created=False)
    item = ContentItem.objects.filter(source=source, external_id=external_id).first()
    if item is None:
        raise ValidationError(f"no content item {source}:{external_id}")
    policy = Policy.objects.filter(key=policy_key).first()
    if policy is None:
        raise ValidationError(f"unknown policy {policy_key!r}")
    queue = Queue.objects.filter(kind=QueueKind.APPEALS, is_active=True).order_by("pk").first()
    if queue is None:
        raise ValidationError("no active appeals queue; a lead must create one")
    original_labels, original_source, decision = _appealed_outcome(item, policy)
    try:
        with transaction.atomic():
            created = review_task_open(
                specs=[
                    TaskSpec(
                        item_id=item.pk,
                        policy_id=policy.pk,
                        queue=queue,
                        reason=TaskReason.APPEAL,
                        priority=APPEAL_PRIORITY,
                    )
                ],
                actor=actor,
            )
            task_id = created[0][1] if created else _open_task_id(item, policy, queue)
            appeal = Appeal.objects.create(
                item=item,
                policy=policy,
                decision=decision,
                original_labels=original_labels,
                original_source=original_source,
                external_ref=external_ref,
                statement=statement[:10_000],
                task_id=task_id,
            )
            audit_record(
                actor=actor,
                action="appeal.opened",
                object_type="appeal",
                object_id=appeal.pk,
                item_id=item.pk,
                after={"original_labels": original_labels, "task_id": task_id},
            )
    except IntegrityError:  # the same appeal arrived twice at once
        return AppealOpened(Appeal.objects.get(external_ref=external_ref), created=False)
    return AppealOpened(appeal, created=True)


def _appealed_outcome(item: ContentItem, policy: Policy) -> tuple[list[str], str, ModelDecision | None]:
    gold = gold_current(item_id=item.pk, policy_id=policy.pk)
    routed = ModelDecision.objects.filter(item=item, policy=policy).exclude(routing_outcome=RoutingOutcome.SHADOW)
    decision = routed.order_by("-received_at").first()
    if gold is not None:
        return list(gold.labels), gold.source, decision
    if decision is not None and decision.routing_outcome == RoutingOutcome.AUTO_ACTION:
        return [decision.predicted_label or "violating"], "model", decision
    raise ValidationError("this item has no gold label and no automatic action to appeal")


def _open_task_id(item: ContentItem, policy: Policy, queue: Queue) -> int:
    return ReviewTask.objects.get(item=item, policy=policy, queue=queue, status="open").pk


def appeal_conclude(*, task: ReviewTask, gold: GoldLabel) -> None:
    """Record the outcome of the appeals attached to a task that just produced a gold label.

    Call inside the gold label's transaction; each decided appeal sends `appeal_decided` there."""
    for appeal in Appeal.objects.select_for_update().filter(task=task, status=AppealStatus.OPEN):
        overturned = sorted(gold.labels) != sorted(appeal.original_labels)
        appeal.status = AppealStatus.OVERTURNED if overturned else AppealStatus.UPHELD
        appeal.outcome_gold = gold
        appeal.decided_at = db_now()
        appeal.save(update_fields=["status", "outcome_gold", "decided_at"])
        audit_record(
            actor=Actor(gold.created_by_id, "system"),
            action="appeal.concluded",
            object_type="appeal",
            object_id=appeal.pk,
            item_id=task.item_id,
            after={"status": appeal.status},
        )
        # Receivers write in this transaction (webhook deliveries) and send after commit.
        appeal_decided.send(sender=Appeal, appeal=appeal)


@dataclass(frozen=True)
class OverturnRate:
    key: str
    decided: int
    overturned: int

    @property
    def rate(self) -> float:
        return self.overturned / self.decided if self.decided else 0.0


def appeal_overturn_rates() -> dict[str, list[OverturnRate]]:
    """Overturn rate of decided appeals, per policy and per model (for appeals of model actions)."""
    decided = Appeal.objects.exclude(status=AppealStatus.OPEN)
    overturned = Count("pk", filter=Q(status=AppealStatus.OVERTURNED))
    by_policy = decided.values("policy__key").annotate(n=Count("pk"), o=overturned).order_by("policy__key")
    by_model = (
        decided.filter(decision__isnull=False, original_source="model")
        .values("decision__model_name", "decision__model_version")
        .annotate(n=Count("pk"), o=overturned)
        .order_by("decision__model_name", "decision__model_version")
    )
    return {
        "policy": [OverturnRate(r["policy__key"], r["n"], r["o"]) for r in by_policy],
        "model": [
            OverturnRate(f"{r['decision__model_name']}@{r['decision__model_version']}", r["n"], r["o"])
            for r in by_model
        ],
    }
