"""Policy leads' decisions on adjudications: decide, send back to the same reviewers, confirm in bulk."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from reviewapp.access import is_lead
from reviewapp.audit import Actor, audit_record
from reviewapp.db import db_now
from reviewapp.errors import Conflict
from reviewapp.models import AssignmentReason, ReviewTask, TaskReason
from reviewapp.services.assignments import review_task_assign
from reviewapp.services.notifications import notify
from reviewapp.services.tasks import review_task_decide, review_task_reopen, review_task_send_back

from ..models import (
    Adjudication,
    AdjudicationReason,
    AdjudicationStatus,
    AnnotationSource,
    GoldLabel,
    GoldSource,
)
from .annotations import annotations_withdraw, check_labels, policy_version_for_task
from .consensus import gold_follow_up
from .gold import gold_record


class AdjudicationClosed(Conflict):
    """Someone else already decided or sent back this adjudication."""


def _lock(adjudication_id: int) -> tuple[Adjudication, ReviewTask]:
    """Lock the task, then the adjudication (the order every task transition uses)."""
    task_id = Adjudication.objects.values_list("task_id", flat=True).get(pk=adjudication_id)
    task = (
        ReviewTask.objects.select_for_update(of=("self",))
        .select_related("queue", "decision", "policy", "item")
        .get(pk=task_id)
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


# Answers given here by a person, who can be asked again in the app. Crowd imports, Label Studio
# and LLM answers are not: an item whose answers are all of those goes to one more reviewer instead.
SEND_BACK_SOURCES = (AnnotationSource.WORKSPACE, AnnotationSource.API)


def adjudication_send_back(*, adjudication_id: int, lead: User, note: str) -> ReviewTask:
    """Send the item back to the SAME reviewers who answered it, with the lead's note.

    Their live answers are withdrawn (`retracted_at` set: kept in history, each audited), and the
    task reopens reserved for them (a `sent_back` TaskAssignment each, carrying the note, shown on
    the task); each is notified. No other reviewer can claim it meanwhile. As each answers again,
    their assignment is fulfilled; with the last answer the task completes and resolves as usual.
    Only reviewers who can still work the queue (members, or leads) are asked again. An item none
    of them answered in the app (escalated before labelling, or answered only by imports or
    machines) reopens for one more independent review instead.
    """
    note = note.strip()
    if not note:
        raise ValidationError("Say what reviewers should look at again.")
    with transaction.atomic():
        adjudication, task = _lock(adjudication_id)
        actor = Actor.of(lead)
        now = db_now()
        adjudication.status = AdjudicationStatus.SENT_BACK
        adjudication.decided_by = lead
        adjudication.decided_at = now
        adjudication.note = (adjudication.note + "\n\n" if adjudication.note else "") + f"Lead: {note}"
        adjudication.save(update_fields=["status", "decided_by", "decided_at", "note"])
        answers = [
            a
            for a in task.annotations.filter(retracted_at__isnull=True, source__in=SEND_BACK_SOURCES)
            .select_related("reviewer")
            .order_by("created_at")
            if a.reviewer.is_active and _may_work(a.reviewer, task)
        ]
        if answers:
            annotations_withdraw(annotations=answers, actor=actor, after={"sent_back_by_adjudication": adjudication.pk})
            review_task_send_back(task=task, withdrawn=len(answers))
            reviewers = list(dict.fromkeys(a.reviewer for a in answers))
            review_task_assign(
                task=task, reviewers=reviewers, reason=AssignmentReason.SENT_BACK, note=note, actor=actor
            )
            notify(
                users=reviewers,
                kind="sent_back",
                text=f"A lead sent back your answer on item {task.item.external_id}: {note}",
                url=reverse("queue-work", args=[task.queue_id]),
            )
        else:
            reviewers = []
            review_task_reopen(
                task=task,
                extra_annotations=max(
                    task.extra_annotations, task.annotation_count + 1 - task.queue.required_annotations
                ),
            )
        audit_record(
            actor=actor,
            action="adjudication.sent_back",
            object_type="adjudication",
            object_id=adjudication.pk,
            item_id=task.item_id,
            after={
                "note": note,
                "required_annotations": task.required_annotations,
                "reviewers": [r.pk for r in reviewers],
            },
        )
    return task


def _may_work(reviewer: User, task: ReviewTask) -> bool:
    """Whether the reviewer can still claim in the task's queue (a member, or a lead)."""
    return is_lead(reviewer) or task.queue.members.filter(pk=reviewer.pk).exists()


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
