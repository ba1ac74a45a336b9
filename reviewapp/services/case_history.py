"""Case history: an upstream author's other items, decisions and outcomes.

Upstream may send an `author` key with an item (`ContentItem.author_key`: pseudonymous, never shown
to reviewers). Items of the same source with the same key are the author's case history:

- A policy lead's item page lists the author's other items with their model decisions, current gold
  labels and appeals (`author_case_history`).
- A reviewer's workspace shows one line, "This author: N prior violations under this policy"
  (`author_history_line`), only on a queue with `show_author_history` that is not blind (a blind
  queue hides everything that could anchor the judgement), and only for an item that has an author.
  The count is about the author's *other* items, so it is computed the same way for a honeypot as
  for live work and tells nothing about the task in hand.

What counts as a violation: a current (not superseded) gold label under the task's policy that
holds at least one label that is not none-like. None-like labels, from the label schema of the gold
label's policy version: values starting with `not_`, `no_` or `non_` (`not_violating`), or `none`;
a schema with no such value treats its first label as the none-like one (`ok`, `spam`, `scam`:
`ok`). So `violating`, `hate` or a multi-label answer with any violating label count; `not_violating`
does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Q

from labeling.models import Appeal, GoldLabel, PolicyVersion

from ..models import ContentItem, ModelDecision, ReviewTask

NONE_LIKE_PREFIXES = ("not_", "no_", "non_")
NONE_LIKE_VALUES = frozenset({"none"})
# The item page lists this many of the author's other items, newest first (with the total).
CASE_HISTORY_SHOWN = 50


def none_like_labels(label_values: list[str]) -> frozenset[str]:
    """The values of a label schema that mean "no violation" (see the module docstring)."""
    none_like = frozenset(
        value for value in label_values if value.startswith(NONE_LIKE_PREFIXES) or value in NONE_LIKE_VALUES
    )
    if none_like or not label_values:
        return none_like
    return frozenset(label_values[:1])


def is_violation(labels: list[str], version: PolicyVersion) -> bool:
    """Whether a gold label's `labels`, under its policy `version`, name a violation."""
    none_like = none_like_labels(version.label_values)
    return any(label not in none_like for label in labels)


@dataclass(frozen=True)
class AuthorHistoryLine:
    """What the workspace line says: `violations` prior violations under `policy_name`."""

    violations: int
    policy_name: str


def author_history_line(*, task: ReviewTask) -> AuthorHistoryLine | None:
    """The compact 'this author: N prior violations under this policy' line, or None (blind queues,
    queues that hide it, items without an author key).

    No query unless the line is shown (the workspace's query count is pinned); then one.
    """
    queue, item = task.queue, task.item
    if queue.blind_review or not queue.show_author_history or not item.author_key:
        return None
    golds = (
        GoldLabel.objects.filter(
            policy_id=task.policy_id,
            superseded_by__isnull=True,
            item__source=item.source,
            item__author_key=item.author_key,
        )
        .exclude(item_id=item.pk)
        .select_related("policy_version")
        .only("labels", "policy_version__label_schema")
    )
    violations = sum(1 for gold in golds if is_violation(gold.labels, gold.policy_version))
    return AuthorHistoryLine(violations=violations, policy_name=task.policy.name)


@dataclass
class AuthorItem:
    """One of the author's other items, with what happened to it."""

    item: ContentItem
    decisions: list[ModelDecision] = field(default_factory=list)
    gold: list[GoldLabel] = field(default_factory=list)  # current versions
    appeals: list[Appeal] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)  # names of the policies it violated (current gold)


@dataclass(frozen=True)
class AuthorCaseHistory:
    items: list[AuthorItem]
    total: int  # the author's other items, of which `items` holds the newest CASE_HISTORY_SHOWN
    violations: int  # current gold labels that are violations, on the items shown


def author_case_history(*, item: ContentItem) -> AuthorCaseHistory | None:
    """The author's other items (same source and author key), newest first, for the lead's item
    page; None when the item has no author key. Five queries whatever the history."""
    if not item.author_key:
        return None
    others = ContentItem.objects.filter(source=item.source, author_key=item.author_key).exclude(pk=item.pk)
    total = others.count()
    rows = {
        other.pk: AuthorItem(item=other)
        for other in others.order_by("-created_at", "-id").only("source", "external_id", "title", "text", "created_at")[
            :CASE_HISTORY_SHOWN
        ]
    }
    ids = list(rows)
    if ids:
        decisions = ModelDecision.objects.filter(item_id__in=ids).select_related("policy")
        for decision in decisions.order_by("received_at", "pk"):
            rows[decision.item_id].decisions.append(decision)
        gold = GoldLabel.objects.filter(Q(item_id__in=ids) & Q(superseded_by__isnull=True))
        for label in gold.select_related("policy", "policy_version").order_by("policy__name"):
            row = rows[label.item_id]
            row.gold.append(label)
            if is_violation(label.labels, label.policy_version):
                row.violations.append(label.policy.name)
        for appeal in Appeal.objects.filter(item_id__in=ids).select_related("policy").order_by("created_at", "pk"):
            rows[appeal.item_id].appeals.append(appeal)
    return AuthorCaseHistory(
        items=list(rows.values()), total=total, violations=sum(len(row.violations) for row in rows.values())
    )
