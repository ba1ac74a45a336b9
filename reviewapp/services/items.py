"""What became of an item, for the upstream system that sent it (GET /api/v1/items).

A read, not a transition: the item found by its exact upstream identity (source, external_id),
with its model decisions, its review tasks' states, its current gold labels and its appeals.
What a reviewer's or lead's identity or a honeypot would reveal is left out here, not just in the
rendering: no user is loaded, and honeypot tasks (served to measure reviewers; an item's use as
one must not show anywhere outside the lead pages) are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from labeling.models import Appeal, GoldLabel

from ..models import ContentItem, ModelDecision, ReviewTask, TaskReason


@dataclass(frozen=True)
class ItemHistory:
    item: ContentItem
    decisions: list[ModelDecision]
    tasks: list[ReviewTask]
    gold_labels: list[GoldLabel]
    appeals: list[Appeal]


def item_history(*, source: str, external_id: str) -> ItemHistory | None:
    """The item with this exact upstream identity and what happened to it; None when unknown.

    Five queries, whatever the item's history (each list is ordered oldest first)."""
    item = ContentItem.objects.filter(source=source, external_id=external_id).first()
    if item is None:
        return None
    decisions = item.decisions.select_related("policy", "policy_version").order_by("received_at", "pk")
    tasks = (
        item.tasks.exclude(reason=TaskReason.HONEYPOT).select_related("policy", "queue").order_by("created_at", "pk")
    )
    gold = (
        GoldLabel.objects.filter(item=item, superseded_by__isnull=True)
        .select_related("policy", "policy_version")
        .order_by("policy__key")
    )
    appeals = Appeal.objects.filter(item=item).select_related("policy").order_by("created_at", "pk")
    return ItemHistory(item, list(decisions), list(tasks), list(gold), list(appeals))
