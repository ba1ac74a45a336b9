"""Reserving a task for named reviewers: a lead sends answers back, or assigns work to a person.

A task with an open `TaskAssignment` is claimable only by the reviewers it is reserved for, who
are served it before unassigned work (see `reviewapp.services.claims`). `ReviewTask.assigned`
mirrors "has an open assignment" so the claim query can skip reserved tasks without a probe.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from ..audit import Actor, audit_record
from ..db import db_now
from ..models import AssignmentReason, ReviewTask, TaskAssignment, TaskStatus


def review_task_assign(
    *, task: ReviewTask, reviewers: Sequence[User], reason: AssignmentReason, note: str, actor: Actor
) -> list[TaskAssignment]:
    """Reserve the open `task` for each of `reviewers`; return the assignments opened now.

    Expects the caller to hold the task row locked (`select_for_update`) inside its transaction,
    with the task open. Idempotent per reviewer: one already holding an open assignment on the
    task gets no second one. Audit: one `task.assigned` event naming the reviewers and the note.
    """
    if task.status != TaskStatus.OPEN:
        raise ValidationError(
            f"Task {task.pk} is {task.get_status_display().lower()}; only open tasks can be assigned."
        )
    held = set(
        TaskAssignment.objects.filter(task=task, fulfilled_at__isnull=True, cancelled_at__isnull=True).values_list(
            "reviewer_id", flat=True
        )
    )
    new = [
        TaskAssignment(task=task, reviewer=reviewer, reason=reason, note=note, created_by_id=actor.id)
        for reviewer in dict.fromkeys(reviewers)
        if reviewer.pk not in held
    ]
    if not new:
        return []
    TaskAssignment.objects.bulk_create(new)
    if not task.assigned:
        task.assigned = True
        task.save(update_fields=["assigned"])
    audit_record(
        actor=actor,
        action="task.assigned",
        object_type="task",
        object_id=task.pk,
        item_id=task.item_id,
        after={"reviewers": [a.reviewer_id for a in new], "reason": str(reason), "note": note},
    )
    return new


def review_task_assignments_close(*, task: ReviewTask, reviewer: User | None, fulfilled: bool) -> int:
    """Close open assignments of the locked `task`: `reviewer`'s (answered, or cancelled), or all
    of them when `reviewer` is None. Clears `task.assigned` when none stays open. Returns how many
    closed. No audit event of its own: the caller's answer or cancellation records the change."""
    open_assignments = TaskAssignment.objects.filter(task=task, fulfilled_at__isnull=True, cancelled_at__isnull=True)
    mine = open_assignments if reviewer is None else open_assignments.filter(reviewer=reviewer)
    closed = mine.update(**{"fulfilled_at" if fulfilled else "cancelled_at": db_now()})
    if closed and task.assigned and not open_assignments.exists():
        task.assigned = False
        task.save(update_fields=["assigned"])
    return closed


@transaction.atomic
def review_task_assign_by_id(
    *, task_id: int, reviewers: Sequence[User], reason: AssignmentReason, note: str, actor: Actor
) -> list[TaskAssignment]:
    """`review_task_assign` on a task fetched and locked here (for callers without a lock)."""
    task = ReviewTask.objects.select_for_update().get(pk=task_id)
    return review_task_assign(task=task, reviewers=reviewers, reason=reason, note=note, actor=actor)


def task_assignment_notes(*, task: ReviewTask, reviewer: User) -> list[TaskAssignment]:
    """The open assignments of `task` to `reviewer` that carry a note, for the workspace.

    Free for a task reserved for nobody (`task.assigned` is false): no query on the hot path."""
    if not task.assigned:
        return []
    return list(
        TaskAssignment.objects.filter(
            task=task, reviewer=reviewer, fulfilled_at__isnull=True, cancelled_at__isnull=True
        )
        .exclude(note="")
        .select_related("created_by")
        .order_by("created_at")
    )
