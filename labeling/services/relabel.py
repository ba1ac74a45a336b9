"""Re-review after a policy change: queue gold labels given under an older version, compare.

When a lead publishes a new policy version, the gold labels decided under the previous one may
no longer be right. `gold_queue_relabel` sends those items back to reviewers (`reason=relabel`);
their annotations are under the version in force, so consensus records a new gold version that
supersedes the old one (`gold_record`), and `relabel_distribution` compares the labels before
and after on the items that went through it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from reviewapp.audit import Actor, audit_record
from reviewapp.models import Queue, ReviewTask, TaskReason
from reviewapp.services.routing import task_priority
from reviewapp.services.tasks import TaskSpec, review_task_open

from ..models import GoldLabel, Policy, PolicyVersion
from ..stats.proportions import wilson_interval

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


# --- Choosing what to re-review when a version is published ------------------------------------


def gold_relabel_candidates(*, policy: Policy, from_version: PolicyVersion) -> QuerySet[GoldLabel]:
    """Current gold labels of `policy` decided under `from_version` or older and not yet sent for
    re-review since (see `gold_with_pending_review`)."""
    eligible = gold_current_labels(policy=policy).filter(policy_version__number__lte=from_version.number)
    pending = gold_with_pending_review(eligible, reason=TaskReason.RELABEL)
    return eligible.exclude(pk__in=pending.values("pk"))


def stratified_allocation(counts: Mapping[str, int], n: int) -> dict[str, int]:
    """How many of `n` to draw from each stratum: proportional to its size, at least one from each
    non-empty stratum, never more than it holds (largest-remainder rounding, ties by name).

    Raises ValidationError when `n` is smaller than the number of non-empty strata.
    """
    sizes = {key: size for key, size in sorted(counts.items()) if size > 0}
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    if n < len(sizes):
        raise ValidationError(
            f"A sample of {n} cannot hold one item of each of the {len(sizes)} labels; choose at least {len(sizes)}."
        )
    quota = {key: n * size / total for key, size in sizes.items()}
    allocation = {key: max(1, math.floor(q)) for key, q in quota.items()}
    while sum(allocation.values()) > n:  # the minimum of one pushed us over: take from the most over-served
        key = max((k for k in allocation if allocation[k] > 1), key=lambda k: (allocation[k] - quota[k], k))
        allocation[key] -= 1
    while sum(allocation.values()) < n:  # hand out the rest by largest remainder
        key = max((k for k in allocation if allocation[k] < sizes[k]), key=lambda k: (quota[k] - allocation[k], k))
        allocation[key] += 1
    return allocation


@dataclass(frozen=True)
class RelabelSelection:
    """The gold labels chosen for re-review and how: recorded in the publication's audit event."""

    gold_ids: list[int]
    population: dict[str, int]  # label key → candidates
    chosen: dict[str, int]  # label key → chosen
    seed: int | None = None

    def record(self) -> dict[str, object]:
        return {"population": self.population, "chosen": self.chosen, "seed": self.seed, "gold_ids": self.gold_ids}


def relabel_sample(*, candidates: QuerySet[GoldLabel], n: int, seed: int) -> RelabelSelection:
    """A stratified random sample of `n` of `candidates`, stratified by current gold label
    (`label_key`), proportional with at least one per label (`stratified_allocation`).
    Deterministic for a given seed and candidate set."""
    if n < 1:
        raise ValidationError("The sample size must be at least 1.")
    strata: dict[str, list[int]] = {}
    for gold_id, labels in candidates.order_by("pk").values_list("pk", "labels"):
        strata.setdefault(label_key(labels), []).append(gold_id)
    if not strata:
        raise ValidationError("No gold label is waiting for re-review under an older version: nothing to sample.")
    population = {key: len(ids) for key, ids in sorted(strata.items())}
    allocation = stratified_allocation(population, n)
    rng = random.Random(seed)  # noqa: S311 -- a reproducible sample, not a secret
    chosen_ids = sorted(gold_id for key in population for gold_id in rng.sample(strata[key], allocation[key]))
    return RelabelSelection(gold_ids=chosen_ids, population=population, chosen=allocation, seed=seed)


def relabel_affected(*, candidates: QuerySet[GoldLabel], labels: Collection[str]) -> RelabelSelection:
    """Every candidate whose gold label includes one of `labels` (removed or redefined values)."""
    wanted = set(labels)
    population: Counter[str] = Counter()
    chosen: Counter[str] = Counter()
    gold_ids: list[int] = []
    for gold_id, gold_labels in candidates.order_by("pk").values_list("pk", "labels"):
        key = label_key(gold_labels)
        population[key] += 1
        if wanted & set(gold_labels):
            chosen[key] += 1
            gold_ids.append(gold_id)
    return RelabelSelection(gold_ids=gold_ids, population=dict(sorted(population.items())), chosen=dict(chosen))


def relabel_tasks_open(*, selection: RelabelSelection, queue: Queue, actor: Actor) -> list[int]:
    """Open a RELABEL task in `queue` for each chosen gold label's item. Call inside the
    transaction that made the new version; audit: `task.created` per task (review_task_open)."""
    golds = GoldLabel.objects.filter(pk__in=selection.gold_ids).select_related("policy", "item", "task").order_by("pk")
    return review_tasks_open(golds, queue=queue, reason=TaskReason.RELABEL, actor=actor)


@dataclass(frozen=True)
class ShareRow:
    """One label's share of the re-decided items before and after, with 95 % Wilson intervals."""

    label: str
    before: int
    after: int
    n: int

    @property
    def before_share(self) -> float:
        return self.before / self.n if self.n else 0.0

    @property
    def after_share(self) -> float:
        return self.after / self.n if self.n else 0.0

    @property
    def before_interval(self) -> tuple[float, float]:
        return wilson_interval(self.before, self.n)

    @property
    def after_interval(self) -> tuple[float, float]:
        return wilson_interval(self.after, self.n)

    @property
    def difference(self) -> float:
        return self.after_share - self.before_share


def relabel_share_rows(distribution: RelabelDistribution) -> list[ShareRow]:
    return [
        ShareRow(label, distribution.before[label], distribution.after[label], distribution.items)
        for label in distribution.labels
    ]
