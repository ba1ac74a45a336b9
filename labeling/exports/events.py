"""What each webhook event says, and the signal receivers that emit them (connected in apps.py).

Every event names the item the way upstream knows it (`source`, `external_id`) and the policy by
its key and version number, so an upstream system can act on it without an export or a lookup:

- `decision.enforced`: an ingested decision was enforced automatically (`score >= auto_action`);
  the model, score, routing outcome, the thresholds in force and whether it was audit-sampled.
  Sent at ingest routing only: a human review does not enforce anything itself, its outcome is
  the gold label (`gold_label.created`, with the route that brought the item to people).
- `gold_label.created`: a new gold label version, with its labels, route, how it was decided
  (`adjudicator_kind`) and the policy version it was decided under.
- `appeal.decided`: an appeal was upheld or overturned, with the outcome's gold label and the
  model decision the appeal was about (if it was about one).

Payloads never name a reviewer or lead, and say nothing of honeypots. Fields are only ever added
to a payload (receivers must ignore fields they do not know); removing or renaming one would be
a new event name. Receivers run inside the transaction of the change; they build a payload only
when some endpoint subscribes to the event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from labeling.models import Appeal, GoldLabel
from reviewapp.models import ModelDecision

from .models import WebhookEvent
from .webhooks import endpoints_subscribed, events_emit


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def decision_payload(decision: ModelDecision) -> dict[str, Any]:
    version = decision.policy_version
    return {
        "decision_id": decision.pk,
        "item_id": decision.item_id,
        "source": decision.item.source,
        "external_id": decision.item.external_id,
        "policy": decision.policy.key,
        "policy_version": version.number if version else None,
        "model_name": decision.model_name,
        "model_version": decision.model_version,
        "score": decision.score,
        "predicted_label": decision.predicted_label,
        "routing_outcome": decision.routing_outcome,
        "thresholds": {"auto_action": decision.auto_action_threshold, "auto_clear": decision.auto_clear_threshold},
        "audit_sampled": decision.audit_sampled,
        "sampling_propensity": decision.sampling_propensity,
        "decided_at": _iso(decision.decided_at),
        "received_at": _iso(decision.received_at),
    }


def adjudicator_kind(gold: GoldLabel) -> str:
    """'lead' (a lead decided), 'reviewers' (their answers agreed) or 'none' (imported, no answers)."""
    if gold.adjudicator_id is not None:
        return "lead"
    return "reviewers" if gold.n_annotations else "none"


def gold_payload(gold: GoldLabel) -> dict[str, Any]:
    return {
        "gold_label_id": gold.pk,
        "item_id": gold.item_id,
        "source": gold.item.source,
        "external_id": gold.item.external_id,
        "policy_id": gold.policy_id,
        "policy": gold.policy.key,
        "policy_version_id": gold.policy_version_id,
        "policy_version": gold.policy_version.number,
        "version": gold.version,
        "supersedes_id": gold.supersedes_id,
        "labels": list(gold.labels),
        "severity": gold.severity,
        "label_source": gold.source,
        "route": gold.route,
        "routing_outcome": gold.routing_outcome,
        "adjudicator_kind": adjudicator_kind(gold),
        "created_at": _iso(gold.created_at),
    }


def appeal_payload(appeal: Appeal) -> dict[str, Any]:
    gold = appeal.outcome_gold
    decision = appeal.decision
    return {
        "id": appeal.pk,
        "appeal_id": appeal.external_ref,
        "item_id": appeal.item_id,
        "source": appeal.item.source,
        "external_id": appeal.item.external_id,
        "policy": appeal.policy.key,
        "policy_version": gold.policy_version.number if gold else None,
        "outcome": appeal.status,
        "original_labels": list(appeal.original_labels),
        "original_source": appeal.original_source,
        "labels": list(gold.labels) if gold else None,
        "gold_label_id": gold.pk if gold else None,
        "decided_at": _iso(appeal.decided_at),
        "decision": None
        if decision is None
        else {
            "decision_id": decision.pk,
            "model_name": decision.model_name,
            "model_version": decision.model_version,
            "score": decision.score,
            "routing_outcome": decision.routing_outcome,
        },
    }


def decisions_enforced_emit(sender: Any, *, decision_ids: list[int], **kwargs: Any) -> None:
    """Receiver of `reviewapp.signals.decisions_enforced`: one `decision.enforced` event per decision."""
    endpoints = endpoints_subscribed(WebhookEvent.DECISION_ENFORCED)
    if not endpoints:
        return
    decisions = (
        ModelDecision.objects.filter(pk__in=decision_ids)
        .select_related("item", "policy", "policy_version")
        .order_by("pk")
    )
    events_emit(WebhookEvent.DECISION_ENFORCED, [decision_payload(d) for d in decisions], endpoints=endpoints)


def gold_created_emit(sender: Any, *, gold: GoldLabel, **kwargs: Any) -> None:
    """Receiver of `labeling.signals.gold_label_created`."""
    endpoints = endpoints_subscribed(WebhookEvent.GOLD_CREATED)
    if endpoints:
        events_emit(WebhookEvent.GOLD_CREATED, [gold_payload(gold)], endpoints=endpoints)


def appeal_decided_emit(sender: Any, *, appeal: Appeal, **kwargs: Any) -> None:
    """Receiver of `labeling.signals.appeal_decided`."""
    endpoints = endpoints_subscribed(WebhookEvent.APPEAL_DECIDED)
    if endpoints:
        events_emit(WebhookEvent.APPEAL_DECIDED, [appeal_payload(appeal)], endpoints=endpoints)
