"""Gold labels: the one place they are created. Each is a new immutable version."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.db import transaction

from reviewapp.audit import Actor, audit_record
from reviewapp.models import ContentItem, ReviewTask, TaskReason

from ..models import Annotation, GoldLabel, PolicyVersion
from ..signals import gold_label_created


def gold_current(*, item_id: int, policy_id: int) -> GoldLabel | None:
    return GoldLabel.objects.filter(item_id=item_id, policy_id=policy_id).order_by("-version").first()


def gold_record(
    *,
    item_id: int,
    policy_version: PolicyVersion,
    labels: Sequence[str],
    source: str,
    actor: Actor,
    severity: str = "",
    task: ReviewTask | None = None,
    annotations: Sequence[Annotation] = (),
    adjudicator: User | None = None,
    note: str = "",
) -> GoldLabel:
    """Record the gold label of (item, policy) as a new version superseding the current one.

    Provenance comes with it: the task's route and sampling propensity, the model outcome that
    sent the item to people, the annotations it was decided from and their agreement. Locks the
    content item row, so concurrent decisions on one item get consecutive versions; call inside
    the transaction that makes the decision.
    """
    with transaction.atomic():
        ContentItem.objects.select_for_update().filter(pk=item_id).first()
        current = gold_current(item_id=item_id, policy_id=policy_version.policy_id)
        agreeing = [a for a in annotations if sorted(a.labels) == sorted(labels)]
        route, routing_outcome, propensity = _provenance(task, current)
        gold = GoldLabel.objects.create(
            item_id=item_id,
            policy_id=policy_version.policy_id,
            policy_version=policy_version,
            version=current.version + 1 if current else 1,
            supersedes=current,
            labels=sorted(labels),
            severity=severity,
            source=source,
            task=task,
            annotation_ids=sorted(a.pk for a in annotations),
            n_annotations=len(annotations),
            agreement=len(agreeing) / len(annotations) if annotations else None,
            adjudicator=adjudicator,
            route=route,
            routing_outcome=routing_outcome,
            sampling_propensity=propensity,
            note=note,
            created_by_id=actor.id,
        )
        audit_record(
            actor=actor,
            action="gold.created",
            object_type="gold_label",
            object_id=gold.pk,
            item_id=item_id,
            before={"version": current.version, "labels": current.labels} if current else None,
            after={
                "version": gold.version,
                "labels": gold.labels,
                "source": source,
                "policy_version_id": policy_version.pk,
            },
        )
        # Receivers write in this transaction (webhook deliveries) and send after commit.
        gold_label_created.send(sender=GoldLabel, gold=gold)
    return gold


# A re-review does not change how the item first reached people: estimates that weight gold by
# its route and sampling propensity must keep seeing the original ones.
REREVIEW_REASONS = frozenset({TaskReason.RELABEL, TaskReason.LABEL_ERROR})


def _provenance(task: ReviewTask | None, current: GoldLabel | None) -> tuple[str, str, float]:
    if task is not None and task.reason in REREVIEW_REASONS and current is not None:
        return current.route, current.routing_outcome, current.sampling_propensity
    if task is None:
        return "", "", 1.0
    return task.reason, task.decision.routing_outcome if task.decision else "", task.sampling_propensity
