"""Policy leads' decisions on adjudications: decide, send back, confirm in bulk."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from reviewapp.audit import Actor, audit_record
from reviewapp.db import db_now
from reviewapp.errors import Conflict
from reviewapp.models import ReviewTask, TaskReason
from reviewapp.services.tasks import review_task_decide, review_task_reopen

from ..models import Adjudication, AdjudicationReason, AdjudicationStatus, GoldLabel, GoldSource
from .annotations import check_labels, policy_version_for_task
from .consensus import gold_follow_up
from .gold import gold_record


class AdjudicationClosed(Conflict):
    """Someone else already decided or sent back this adjudication."""


def _lock(adjudication_id: int) -> tuple[Adjudication, ReviewTask]:
    """Lock the task, then the adjudication (the order every task transition uses)."""
    task_id = Adjudication.objects.values_list("task_id", flat=True).get(pk=adjudication_id)
    task = (
        ReviewTask.objects.select_for_update(of=("self",)).select_related("queue", "decision", "policy").get(pk=task_id)
    )
    adjudication = Adjudication.objects.select_for_update().get(pk=adjudication_id)
    if adjudication.status != AdjudicationStatus.OPEN:
        raise AdjudicationClosed(f"This item was already {adjudication.get_status_display().lower()}.")
    return adjudication, task


def adjudication_decide(
    *,
    adjudication_id: int,
    lead: User,
    labels: Sequence[str],
    severity: str = "",
    note: str = "",
    policy_version_id: int | None = None,
) -> GoldLabel:
    """A lead's decision: the gold label, with the reviewers' annotations as provenance."""
    with transaction.atomic():
        adjudication, task = _lock(adjudication_id)
        version = policy_version_for_task(task=task, policy_version_id=policy_version_id)
        labels = check_labels(version, list(labels), severity)
        annotations = list(task.annotations.filter(retracted_at__isnull=True))
        source = GoldSource.APPEAL if task.reason == TaskReason.APPEAL else GoldSource.ADJUDICATION
        actor = Actor.of(lead)
        gold = gold_record(
            item_id=task.item_id,
            policy_version=version,
            labels=labels,
            source=source,
            actor=actor,
            severity=severity,
            task=task,
            annotations=annotations,
            adjudicator=lead,
            note=note,
        )
        now = db_now()
        adjudication.status = AdjudicationStatus.DECIDED
        adjudication.decided_by = lead
        adjudication.decided_at = now
        adjudication.gold = gold
        adjudication.save(update_fields=["status", "decided_by", "decided_at", "gold"])
        review_task_decide(task=task, now=now)
        audit_record(
            actor=actor,
            action="adjudication.decided",
            object_type="adjudication",
            object_id=adjudication.pk,
            item_id=task.item_id,
            after={"labels": labels, "gold_id": gold.pk, "note": note},
        )
        gold_follow_up(task=task, gold=gold)
    return gold


def adjudication_send_back(*, adjudication_id: int, lead: User, note: str) -> ReviewTask:
    """Reopen the item for one more independent review, with the lead's note on the record."""
    note = note.strip()
    if not note:
        raise ValidationError("Say what reviewers should look at again.")
    with transaction.atomic():
        adjudication, task = _lock(adjudication_id)
        adjudication.status = AdjudicationStatus.SENT_BACK
        adjudication.decided_by = lead
        adjudication.decided_at = db_now()
        adjudication.note = (adjudication.note + "\n\n" if adjudication.note else "") + f"Lead: {note}"
        adjudication.save(update_fields=["status", "decided_by", "decided_at", "note"])
        review_task_reopen(
            task=task,
            extra_annotations=max(task.extra_annotations, task.annotation_count + 1 - task.queue.required_annotations),
        )
        audit_record(
            actor=Actor.of(lead),
            action="adjudication.sent_back",
            object_type="adjudication",
            object_id=adjudication.pk,
            item_id=task.item_id,
            after={"note": note, "required_annotations": task.required_annotations},
        )
    return task


def adjudications_confirm_agreed(*, adjudication_ids: Sequence[int], lead: User) -> list[GoldLabel]:
    """Bulk: make gold from every listed adjudication whose live annotations all agree.

    Others are left open (returned list is shorter). Each decision is its own transaction, so
    one that someone else decided first does not undo the rest.
    """
    made = []
    for adjudication_id in adjudication_ids:
        adjudication = Adjudication.objects.select_related("task").filter(pk=adjudication_id).first()
        if adjudication is None:  # no such id: nothing to confirm, like one already decided
            continue
        votes = {
            tuple(sorted(labels))
            for labels in adjudication.task.annotations.filter(retracted_at__isnull=True).values_list(
                "labels", flat=True
            )
        }
        if adjudication.status != AdjudicationStatus.OPEN or len(votes) != 1:
            continue
        if adjudication.reason not in (AdjudicationReason.CONFIRM, AdjudicationReason.LOW_CONFIDENCE):
            continue
        try:
            made.append(adjudication_decide(adjudication_id=adjudication_id, lead=lead, labels=list(votes.pop())))
        except AdjudicationClosed:
            continue
    return made
