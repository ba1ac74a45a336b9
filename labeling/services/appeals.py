"""Appeals: a user contests an outcome; reviewers look again in an appeals queue."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet

from reviewapp.access import POLICY_LEAD, REVIEWER
from reviewapp.audit import Actor, audit_record
from reviewapp.db import db_now
from reviewapp.errors import Conflict
from reviewapp.models import ContentItem, ModelDecision, Queue, QueueKind, ReviewTask, RoutingOutcome, TaskReason
from reviewapp.services.imports import queue_ensure
from reviewapp.services.tasks import TaskSpec, review_task_open

from ..models import Appeal, AppealStatus, GoldLabel, Policy
from ..signals import appeal_decided
from .gold import gold_current

APPEAL_PRIORITY = 10.0  # appeals are time-sensitive for the user: served before ordinary review
APPEALS_QUEUE_SLUG = "appeals"
NO_APPEALS_QUEUE = (
    "no active appeals queue: a policy lead creates one with “Create the appeals queue” on /lead/appeals/ "
    "(or an admin adds a queue of kind “appeals”); then send this appeal again"
)


class NoAppealsQueue(Conflict):
    """Appeals cannot be opened until an active appeals queue exists (HTTP 409)."""


@dataclass(frozen=True)
class AppealsQueue:
    queue: Queue
    outcome: str  # "existing", "enabled" or "created"


def appeals_queue_active() -> Queue | None:
    """The queue new appeals go to: the oldest active queue of kind appeals, if any."""
    return Queue.objects.filter(kind=QueueKind.APPEALS, is_active=True).order_by("pk").first()


def appeals_queue_ensure(*, actor: Actor) -> AppealsQueue:
    """An active appeals queue, made when there is none. Idempotent; audited.

    An inactive appeals queue is enabled again; otherwise a queue `appeals` (or `appeals-2`, … when
    that slug belongs to another kind of queue) is created, one reviewer per appeal, no honeypots,
    with every reviewer and policy lead as a member. Two leads pressing the button at once get one
    queue: the slug is unique and `queue_ensure` returns the row the other made.
    """
    with transaction.atomic():
        queues = Queue.objects.select_for_update().filter(kind=QueueKind.APPEALS).order_by("-is_active", "pk")
        existing = queues.first()
        if existing is not None and existing.is_active:
            return AppealsQueue(existing, "existing")
        if existing is not None:
            existing.is_active = True
            existing.save(update_fields=["is_active"])
            audit_record(
                actor=actor,
                action="queue.enabled",
                object_type="queue",
                object_id=existing.pk,
                before={"is_active": False},
                after={"is_active": True},
            )
            return AppealsQueue(existing, "enabled")
        queue, created = queue_ensure(
            slug=_free_appeals_slug(),
            actor=actor,
            name="Appeals",
            description="Users contest an automatic action or a label; one reviewer looks again and decides.",
            kind=QueueKind.APPEALS,
            sla_minutes=24 * 60,
            lease_seconds=600,
            required_annotations=1,
        )
        if created:
            _members_add(queue=queue, users=_reviewers_and_leads(), actor=actor)
    return AppealsQueue(queue, "created" if created else "existing")


def _free_appeals_slug() -> str:
    taken = set(Queue.objects.filter(slug__startswith=APPEALS_QUEUE_SLUG).values_list("slug", flat=True))
    candidates = [APPEALS_QUEUE_SLUG, *(f"{APPEALS_QUEUE_SLUG}-{n}" for n in range(2, len(taken) + 3))]
    return next(slug for slug in candidates if slug not in taken)


def _reviewers_and_leads() -> QuerySet[User]:
    return User.objects.filter(is_active=True, groups__name__in=[REVIEWER, POLICY_LEAD]).distinct()


def _members_add(*, queue: Queue, users: QuerySet[User], actor: Actor) -> None:
    user_ids = sorted(users.values_list("pk", flat=True))
    queue.members.add(*user_ids)
    audit_record(
        actor=actor,
        action="queue.members_added",
        object_type="queue",
        object_id=queue.pk,
        after={"user_ids": user_ids},
    )


@dataclass(frozen=True)
class AppealOpened:
    appeal: Appeal
    created: bool


def appeal_open(
    *, source: str, external_id: str, policy_key: str, external_ref: str, statement: str, actor: Actor
) -> AppealOpened:
    """Reopen an item for review in the appeals queue. Idempotent by `external_ref`.

    The appealed outcome is the item's current gold label, or else the newest model decision's
    automatic action. Raises ValidationError naming what is missing, and NoAppealsQueue (a
    Conflict) while no appeals queue is active.
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
    queue = appeals_queue_active()
    if queue is None:
        raise NoAppealsQueue(NO_APPEALS_QUEUE)
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


def appeal_overturn_rates(*, policy_id: int | None = None) -> dict[str, list[OverturnRate]]:
    """Overturn rate of decided appeals, per policy (keyed by its name) and per model (for appeals of
    model actions); with `policy_id`, of that policy's appeals only."""
    decided = Appeal.objects.exclude(status=AppealStatus.OPEN)
    if policy_id is not None:
        decided = decided.filter(policy_id=policy_id)
    overturned = Count("pk", filter=Q(status=AppealStatus.OVERTURNED))
    by_policy = decided.values("policy__name").annotate(n=Count("pk"), o=overturned).order_by("policy__name")
    by_model = (
        decided.filter(decision__isnull=False, original_source="model")
        .values("decision__model_name", "decision__model_version")
        .annotate(n=Count("pk"), o=overturned)
        .order_by("decision__model_name", "decision__model_version")
    )
    return {
        "policy": [OverturnRate(r["policy__name"], r["n"], r["o"]) for r in by_policy],
        "model": [
            OverturnRate(f"{r['decision__model_name']}@{r['decision__model_version']}", r["n"], r["o"])
            for r in by_model
        ],
    }


@dataclass(frozen=True)
class AppealCounts:
    policy_id: int
    policy_name: str
    open: int
    upheld: int
    overturned: int

    @property
    def decided(self) -> int:
        return self.upheld + self.overturned

    @property
    def overturn_rate(self) -> float | None:
        return self.overturned / self.decided if self.decided else None


def appeal_counts_by_policy() -> list[AppealCounts]:
    """Open, upheld and overturned appeals per policy that has any, by policy name."""
    rows = (
        Appeal.objects.values("policy_id", "policy__name")
        .annotate(
            open=Count("pk", filter=Q(status=AppealStatus.OPEN)),
            upheld=Count("pk", filter=Q(status=AppealStatus.UPHELD)),
            overturned=Count("pk", filter=Q(status=AppealStatus.OVERTURNED)),
        )
        .order_by("policy__name")
    )
    return [AppealCounts(r["policy_id"], r["policy__name"], r["open"], r["upheld"], r["overturned"]) for r in rows]


def appeals_listed(
    *, policy_id: int | None = None, status: str | None = None, before_id: int | None = None, limit: int = 50
) -> list[Appeal]:
    """Appeals newest first, optionally of one policy and status; keyset-paged by id (`before_id`:
    the last id of the previous page), so a page costs the same however many appeals there are."""
    appeals = Appeal.objects.select_related("item", "policy", "decision", "outcome_gold")
    if policy_id is not None:
        appeals = appeals.filter(policy_id=policy_id)
    if status:
        appeals = appeals.filter(status=status)
    if before_id is not None:
        appeals = appeals.filter(pk__lt=before_id)
    return list(appeals.order_by("-pk")[:limit])
