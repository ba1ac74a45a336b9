"""Re-review after a policy change: queue gold labels given under an older version, compare.

When a lead publishes a new policy version, the gold labels decided under the previous one may
no longer be right. `gold_queue_relabel` sends those items back to reviewers (`reason=relabel`);
their annotations are under the version in force, so consensus records a new gold version that
supersedes the old one (`gold_record`), and `relabel_distribution` compares the labels before
and after on the items that went through it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from reviewapp.audit import Actor, audit_record
from reviewapp.models import Queue, ReviewTask, TaskReason
from reviewapp.services.routing import task_priority
from reviewapp.services.tasks import TaskSpec, review_task_open

from ..models import GoldLabel, Policy, PolicyVersion

# A re-review has no fresh model score to rank it by: rank it as fully uncertain.
REVIEW_SCORE = 0.5


def gold_current_labels(*, policy: Policy) -> QuerySet[GoldLabel]:
    """The current gold label of every item under `policy`: the version nobody supersedes."""
    superseded = GoldLabel.objects.filter(supersedes=OuterRef("pk"))
    return GoldLabel.objects.filter(policy=policy).exclude(Exists(superseded))


def gold_with_pending_review(golds: QuerySet[GoldLabel], *, reason: str) -> QuerySet[GoldLabel]:
    """Those of `golds` whose item already has a `reason` task opened after that gold label.

    Such a task is open, with a lead, or resolved into a newer gold label: either way the gold
    label in hand was already sent for this review, so sending it again would duplicate work.
    """
    later_task = ReviewTask.objects.filter(
        item_id=OuterRef("item_id"),
        policy_id=OuterRef("policy_id"),
        reason=reason,
        created_at__gte=OuterRef("created_at"),
    )
    return golds.filter(Exists(later_task))


def review_tasks_open(
    golds: Iterable[GoldLabel],
    *,
    queue: Queue,
    reason: str,
    actor: Actor,
    urgency: Mapping[int, float] | None = None,
) -> list[int]:
    """Open a `reason` task in `queue` for each gold label's item; return the new task ids.

    Priority is the policy's severity × reach as for any task with no model score, times
    `urgency[gold id]` where given. The task keeps the gold label's sampling propensity and model
    decision, so the gold label it leads to keeps that provenance. Call inside a transaction.
    """
    urgency = urgency or {}
    specs = [
        TaskSpec(
            item_id=gold.item_id,
            policy_id=gold.policy_id,
            queue=queue,
            reason=reason,
            priority=urgency.get(gold.pk, 1.0)
            * task_priority(severity_weight=gold.policy.severity_weight, score=REVIEW_SCORE, reach=gold.item.reach),
            sampling_propensity=gold.sampling_propensity,
            decision_id=gold.task.decision_id if gold.task else None,
        )
        for gold in golds
    ]
    return [task_id for _, task_id in review_task_open(specs=specs, actor=actor)]


@dataclass(frozen=True)
class RelabelQueued:
    eligible: int  # current gold labels under from_version or older
    already_queued: int  # of those, sent for re-review before (task open, with a lead, or done)
    task_ids: list[int]


def gold_queue_relabel(
    *, policy: Policy, from_version: PolicyVersion, queue: Queue, actor: Actor, limit: int | None = None
) -> RelabelQueued:
    """Queue for re-review every item whose current gold label is under `from_version` or older.

    Idempotent: an item already sent for re-review since its current gold label is not queued
    again. Oldest gold labels first; `limit` caps the number of tasks opened. Raises
    ValidationError when `from_version` is not older than the version in force (reviewers would
    label under the same guideline again). One transaction; audit: `task.created` per task and
    one `relabel.queued` summary.
    """
    current = policy.current_version()
    if from_version.policy_id != policy.pk:
        raise ValidationError(f"{from_version} is not a version of {policy.key}.")
    if current is None or current.number <= from_version.number:
        raise ValidationError(f"{from_version} is the version in force; publish a new version before re-review.")
    eligible = gold_current_labels(policy=policy).filter(policy_version__number__lte=from_version.number)
    pending = gold_with_pending_review(eligible, reason=TaskReason.RELABEL)
    todo = (
        eligible.exclude(pk__in=pending.values("pk"))
        .select_related("policy", "item", "task")
        .order_by("created_at", "pk")
    )
    with transaction.atomic():
        counts = {"eligible": eligible.count(), "already_queued": pending.count()}
        task_ids = review_tasks_open(
            todo[:limit] if limit is not None else todo, queue=queue, reason=TaskReason.RELABEL, actor=actor
        )
        queued = RelabelQueued(**counts, task_ids=task_ids)
        if task_ids:
            audit_record(
                actor=actor,
                action="relabel.queued",
                object_type="policy",
                object_id=policy.pk,
                after={
                    "from_version": from_version.number,
                    "to_version": current.number,
                    "queue": queue.slug,
                    "tasks": len(task_ids),
                    "eligible": queued.eligible,
                    "already_queued": queued.already_queued,
                },
            )
    return queued


def label_key(labels: Iterable[str]) -> str:
    """One label set as a single category ("violating", or "a+b" for a multi-label answer)."""
    return "+".join(sorted(labels))


@dataclass
class RelabelDistribution:
    items: int = 0  # items with a gold label under from_version (or older) and a newer one under to_version
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)  # (before, after) → items

    @property
    def changed(self) -> int:
        return sum(n for (before, after), n in self.confusion.items() if before != after)

    def share(self, side: str) -> dict[str, float]:
        """Label → share of the items, for 'before' or 'after'."""
        counts = self.before if side == "before" else self.after
        return {label: n / self.items for label, n in sorted(counts.items())} if self.items else {}

    @property
    def labels(self) -> list[str]:
        return sorted(set(self.before) | set(self.after))


def relabel_distribution(
    *, policy: Policy, from_version: PolicyVersion, to_version: PolicyVersion
) -> RelabelDistribution:
    """Label counts before and after re-review, on the items re-decided under `to_version`.

    Before: each item's latest gold label under `from_version` or older. After: its current gold
    label, when that is under `to_version` and newer than the before label (whichever path made
    it: consensus, a lead, an appeal). Items not re-decided yet are left out of both sides.
    """
    before: dict[int, GoldLabel] = {}
    old = GoldLabel.objects.filter(policy=policy, policy_version__number__lte=from_version.number)
    for gold in old.order_by("item_id", "version").only("item_id", "version", "labels"):
        before[gold.item_id] = gold  # ascending versions: the last one wins
    after = gold_current_labels(policy=policy).filter(policy_version=to_version, item_id__in=list(before))
    distribution = RelabelDistribution()
    for gold in after.only("item_id", "version", "labels"):
        previous = before[gold.item_id]
        if gold.version <= previous.version:
            continue
        old_key, new_key = label_key(previous.labels), label_key(gold.labels)
        distribution.items += 1
        distribution.before[old_key] += 1
        distribution.after[new_key] += 1
        distribution.confusion[(old_key, new_key)] += 1
    return distribution
