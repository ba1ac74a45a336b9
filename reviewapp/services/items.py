"""What became of an item: for the upstream system that sent it (GET /api/v1/items), and the
whole record for a policy lead's item page (`item_record`).

Reads, not transitions. `item_history`: the item found by its exact upstream identity (source,
external_id), with its model decisions, its review tasks' states, its current gold labels and its
appeals. What a reviewer's or lead's identity or a honeypot would reveal is left out here, not just in the
rendering: no user is loaded, and honeypot tasks (served to measure reviewers; an item's use as
one must not show anywhere outside the lead pages) are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass

from labeling.models import Adjudication, Annotation, Appeal, GoldLabel

from ..models import AuditEvent, ContentItem, ModelDecision, ReviewTask, TaskReason


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


@dataclass(frozen=True)
class ItemRecord:
    """Everything that happened to an item, for a policy lead's item page (reviewers never see it:
    it names reviewers and their answers, and which tasks were honeypots)."""

    item: ContentItem
    decisions: list[ModelDecision]
    tasks: list[ReviewTask]
    annotations: list[Annotation]
    adjudications: list[Adjudication]
    gold_labels: list[GoldLabel]
    appeals: list[Appeal]
    audit_events: list[AuditEvent]
    audit_events_total: int


AUDIT_EVENTS_SHOWN = 100


def item_record(*, item_id: int) -> ItemRecord | None:
    """The item and its whole history, each list oldest first (gold newest version first per
    policy); None when there is no such item. Eight queries whatever the history (nine when the
    trail is longer than the list); the audit list holds the newest AUDIT_EVENTS_SHOWN events
    (the JSON-lines export has them all)."""
    item = ContentItem.objects.filter(pk=item_id).first()
    if item is None:
        return None
    decisions = item.decisions.select_related("policy", "policy_version").order_by("received_at", "pk")
    tasks = item.tasks.select_related("policy", "queue", "leased_by").order_by("created_at", "pk")
    annotations = (
        Annotation.objects.filter(item=item)
        .select_related("reviewer", "policy", "policy_version")
        .order_by("created_at", "pk")
    )
    adjudications = (
        Adjudication.objects.filter(task__item=item)
        .select_related("task__policy", "decided_by", "gold__policy_version")
        .order_by("created_at", "pk")
    )
    gold = (
        GoldLabel.objects.filter(item=item)
        .select_related("policy", "policy_version", "adjudicator")
        .order_by("policy__name", "policy_id", "-version")
    )
    appeals = Appeal.objects.filter(item=item).select_related("policy", "outcome_gold").order_by("created_at", "pk")
    events = AuditEvent.objects.filter(item_id=item.pk)
    newest = list(events.order_by("-occurred_at", "-id")[:AUDIT_EVENTS_SHOWN])
    total = len(newest) if len(newest) < AUDIT_EVENTS_SHOWN else events.count()
    return ItemRecord(
        item=item,
        decisions=list(decisions),
        tasks=list(tasks),
        annotations=list(annotations),
        adjudications=list(adjudications),
        gold_labels=list(gold),
        appeals=list(appeals),
        audit_events=newest[::-1],
        audit_events_total=total,
    )
