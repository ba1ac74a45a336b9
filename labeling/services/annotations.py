"""Annotation transitions: submit and undo. Used by the workspace, the REST API and integrations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from reviewapp import metrics
from reviewapp.audit import Actor, audit_event, audit_record
from reviewapp.db import db_now
from reviewapp.errors import Conflict
from reviewapp.models import AuditEvent, ReviewTask, TaskStatus
from reviewapp.services.assignments import review_task_assignments_close
from reviewapp.services.tasks import review_task_count_answer, review_task_retract_answer

from ..models import Annotation, AnnotationSource, PolicyVersion

MAX_RATIONALE_CHARS = 5000
MAX_HANDLE_TIME_MS = 24 * 3600 * 1000
# Answers given in another tool (Label Studio) never held a lease here: they are not "late", do
# not wait for an in-app reviewer's lease, and their handle time is the other tool's.
EXTERNAL_SOURCES = frozenset({AnnotationSource.LABEL_STUDIO, AnnotationSource.IMPORT})


class SubmissionRejected(Conflict):
    """The answer was not recorded as an annotation (it is kept in the audit log); say why."""


@dataclass(frozen=True)
class SubmitResult:
    annotation: Annotation
    created: bool  # False: this submission id had already been recorded (retry, double click)
    task_completed: bool


def check_labels(version: PolicyVersion, labels: Any, severity: str) -> list[str]:
    """Validate labels and severity against the version's schema; return the labels list."""
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list) or not labels or not all(isinstance(v, str) for v in labels):
        raise ValidationError("Choose a label.")
    allowed = version.label_values
    unknown = [value for value in labels if value not in allowed]
    if unknown:
        raise ValidationError(f"Unknown label {unknown[0]!r} for {version}; allowed: {', '.join(allowed)}.")
    if len(set(labels)) != len(labels):
        raise ValidationError("A label was chosen twice.")
    if len(labels) > 1 and not version.label_schema.get("allow_multiple", False):
        raise ValidationError(f"{version} takes exactly one label.")
    if severity and severity not in version.label_schema.get("severity_levels", []):
        raise ValidationError(f"Unknown severity {severity!r} for {version}.")
    return labels


def annotation_submit(
    *,
    task_id: int,
    reviewer: User,
    submission_id: uuid.UUID,
    labels: Any,
    severity: str = "",
    rationale: str = "",
    handle_time_ms: int | None = None,
    policy_version_id: int | None = None,
    source: str = AnnotationSource.WORKSPACE,
) -> SubmitResult:
    """Record a reviewer's answer to a task. Idempotent per `submission_id`.

    Locks the task row for the check-and-write. Accepted from the reviewer who holds the live
    lease, or, as a late answer (flagged), from the reviewer who held the most recent lease while
    nobody else holds the task. Never from a reviewer who skipped the task or was never served it:
    knowing a task id is not enough, or the claim's exclusions (skips, honeypot rotation, the
    graphic-media cap, independent reviewers) could be walked around. Answers given in another
    tool (EXTERNAL_SOURCES) are not held to leases here. A refused answer raises
    SubmissionRejected, after it is written to the audit log so it is never silently lost.
    Raises ValidationError for labels the policy version does not allow.
    """
    rationale = rationale.strip()
    if len(rationale) > MAX_RATIONALE_CHARS:
        raise ValidationError(f"The rationale is longer than {MAX_RATIONALE_CHARS} characters.")
    with transaction.atomic():
        task = ReviewTask.objects.select_for_update(of=("self",)).select_related("queue", "policy").get(pk=task_id)
        # Read after the lock, so a concurrent double click that got there first is seen.
        facts = _submission_facts(task, reviewer, submission_id)
        if facts.previous_annotation_id is not None:
            return _previous_submission(facts.previous_annotation_id, reviewer)
        version = policy_version_for_task(task=task, policy_version_id=policy_version_id)
        labels = check_labels(version, labels, severity)
        answer = {"labels": labels, "severity": severity, "rationale": rationale, "submission_id": str(submission_id)}
        refusal = _refusal(task, reviewer, facts, external=source in EXTERNAL_SOURCES)
        if refusal is None:
            result = _record(task, reviewer, version, answer, handle_time_ms, facts.now, source)
    if refusal is not None:
        _record_rejection(task, reviewer, answer, refusal)
        metrics.count("submissions", task.queue.slug, "rejected")
        raise SubmissionRejected(refusal)
    return result


@dataclass(frozen=True)
class _SubmissionFacts:
    now: datetime  # the database clock
    previous_annotation_id: int | None  # this submission id was already recorded (retry, double click)
    already_labelled: bool  # the reviewer has a live annotation of this item under this policy
    skipped: bool  # the reviewer skipped (released) this task


def _submission_facts(task: ReviewTask, reviewer: User, submission_id: uuid.UUID) -> _SubmissionFacts:
    """What a submission is checked against, read in one round trip."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT statement_timestamp(),
                   (SELECT id FROM labeling_annotation WHERE submission_id = %(submission)s),
                   EXISTS (SELECT 1 FROM labeling_annotation
                            WHERE item_id = %(item)s AND policy_id = %(policy)s AND reviewer_id = %(reviewer)s
                              AND retracted_at IS NULL),
                   EXISTS (SELECT 1 FROM reviewapp_taskskip WHERE task_id = %(task)s AND reviewer_id = %(reviewer)s)
            """,
            {
                "submission": submission_id,
                "item": task.item_id,
                "policy": task.policy_id,
                "reviewer": reviewer.pk,
                "task": task.pk,
            },
        )
        now, previous_id, already, skipped = cursor.fetchone()
    return _SubmissionFacts(now, previous_id, already, skipped)


def _previous_submission(annotation_id: int, reviewer: User) -> SubmitResult:
    annotation = Annotation.objects.select_related("task__queue").get(pk=annotation_id)
    if annotation.reviewer_id != reviewer.pk:
        raise SubmissionRejected("This submission id belongs to another reviewer's answer.")
    metrics.count("submissions", annotation.task.queue.slug, "duplicate")
    return SubmitResult(annotation, created=False, task_completed=annotation.task.status == TaskStatus.COMPLETED)


def policy_version_for_task(*, task: ReviewTask, policy_version_id: int | None) -> PolicyVersion:
    """The version an answer to `task` is given under: the one named (it must be the task's
    policy's), else the version in force. Raises ValidationError when there is none."""
    if policy_version_id is not None:
        # get(), not first(): first() would order by the model's default ordering, a join to policy.
        try:
            return PolicyVersion.objects.get(pk=policy_version_id, policy_id=task.policy_id)
        except PolicyVersion.DoesNotExist:
            raise ValidationError("That policy version does not belong to this item's policy.") from None
    version = task.policy.current_version()
    if version is None:
        raise ValidationError(f"Policy {task.policy.key!r} has no version in force; a lead must publish one.")
    return version


def _refusal(task: ReviewTask, reviewer: User, facts: _SubmissionFacts, *, external: bool) -> str | None:
    if task.status != TaskStatus.OPEN:
        return f"This item was already {task.get_status_display().lower()}; your answer was kept in the audit log."
    if not external:
        refusal = _lease_refusal(task, reviewer, facts)
        if refusal is not None:
            return refusal
    if facts.already_labelled:
        return "You have already labelled this item."
    return None


def _lease_refusal(task: ReviewTask, reviewer: User, facts: _SubmissionFacts) -> str | None:
    """Why this reviewer may not answer the task here now, or None: the lease rule of annotation_submit."""
    if facts.skipped:
        return "You skipped this item, so it no longer takes your answer; your answer was kept in the audit log."
    lease_live = task.lease_expires_at is not None and task.lease_expires_at > facts.now
    if lease_live and task.leased_by_id == reviewer.pk:
        return None
    if lease_live:
        return "Your claim expired and another reviewer now has this item; your answer was kept in the audit log."
    if task.last_leased_by_id != reviewer.pk:
        return (
            "This item was not assigned to you (or another reviewer had it after you); claim work from the"
            " queue to answer it. Your answer was kept in the audit log."
        )
    return None


def _record(
    task: ReviewTask,
    reviewer: User,
    version: PolicyVersion,
    answer: dict,
    handle_time_ms: int | None,
    now: Any,
    source: str,
) -> SubmitResult:
    external = source in EXTERNAL_SOURCES
    holds_lease = task.leased_by_id == reviewer.pk and task.lease_expires_at > now
    late = not external and not holds_lease
    try:
        # No savepoint (a round trip each way): an IntegrityError ends the submission's
        # transaction anyway, and the caller's, if any, rolls back to its own savepoint.
        with transaction.atomic(savepoint=False):
            annotation = Annotation.objects.create(
                task=task,
                item_id=task.item_id,
                policy_id=task.policy_id,
                policy_version=version,
                reviewer=reviewer,
                submission_id=answer["submission_id"],
                labels=answer["labels"],
                severity=answer["severity"],
                rationale=answer["rationale"],
                handle_time_ms=_handle_time(handle_time_ms, task, now, external=external),
                late=late,
                source=source,
            )
    except IntegrityError:
        raise SubmissionRejected("You have already labelled this item.") from None
    actor = Actor.of(reviewer)
    slug, seconds = task.queue.slug, annotation.handle_time_ms / 1000
    transaction.on_commit(lambda: metrics.count_submission_accepted(queue=slug, handle_seconds=seconds))
    submitted = audit_event(
        actor=actor,
        action="annotation.submitted",
        object_type="annotation",
        object_id=annotation.pk,
        item_id=task.item_id,
        after={**answer, "task_id": task.pk, "late": late, "policy_version_id": version.pk},
    )
    completed = review_task_count_answer(task=task, reviewer=reviewer, now=now, audit_with=[submitted])
    if task.assigned:  # reserved for named reviewers: this answer fulfils the reviewer's assignment
        review_task_assignments_close(task=task, reviewer=reviewer, fulfilled=True)
        if completed and task.assigned:  # answered enough without the others: their reservations lapse
            review_task_assignments_close(task=task, reviewer=None, fulfilled=False)
    if completed:
        _schedule_resolution(task.pk)
    return SubmitResult(annotation, created=True, task_completed=completed)


def _schedule_resolution(task_id: int) -> None:
    """Take consensus once the undo window has closed: inline when there is no window, otherwise
    by a Celery task enqueued after commit (a periodic sweep catches any message that is lost)."""
    if settings.UNDO_WINDOW_SECONDS == 0:
        from .consensus import task_resolve

        task_resolve(task_id=task_id)
        return
    from ..tasks import resolve_task

    countdown = settings.UNDO_WINDOW_SECONDS + 1
    transaction.on_commit(lambda: resolve_task.apply_async((task_id,), countdown=countdown))


def _handle_time(client_ms: int | None, task: ReviewTask, now: Any, *, external: bool = False) -> int:
    """The client's render-to-submit time, never more than the time since the claim (for answers
    given here; another tool's lead time is taken as it reports it)."""
    if external:
        return min(max(client_ms or 0, 0), MAX_HANDLE_TIME_MS)
    server_ms = int((now - task.claimed_at).total_seconds() * 1000) if task.claimed_at else None
    if client_ms is None or client_ms < 0:
        client_ms = server_ms if server_ms is not None else 0
    if server_ms is not None:
        client_ms = min(client_ms, server_ms)
    return min(client_ms, MAX_HANDLE_TIME_MS)


def _record_rejection(task: ReviewTask, reviewer: User, answer: dict, reason: str) -> None:
    # Its own transaction: the submission's transaction ended without writing anything.
    audit_record(
        actor=Actor.of(reviewer),
        action="annotation.rejected",
        object_type="task",
        object_id=task.pk,
        item_id=task.item_id,
        after={**answer, "reason": reason},
    )


def annotation_retract(*, annotation_id: int, reviewer: User) -> ReviewTask:
    """Undo the reviewer's own recent annotation; reopen its task and lease it back to them.

    Locks the task, then the annotation (the same order as submit). Allowed within
    UNDO_WINDOW_SECONDS of the submission.
    """
    with transaction.atomic():
        task_id = Annotation.objects.values_list("task_id", flat=True).get(pk=annotation_id)
        task = ReviewTask.objects.select_for_update(of=("self",)).select_related("queue", "policy").get(pk=task_id)
        annotation = Annotation.objects.select_for_update().get(pk=annotation_id)
        now = db_now()
        _check_retractable(annotation, reviewer, now)
        annotation.retracted_at = now
        annotation.save(update_fields=["retracted_at"])
        before = {"status": task.status, "annotation_count": task.annotation_count}
        review_task_retract_answer(task=task, reviewer=reviewer, now=now)
        audit_record(
            actor=Actor.of(reviewer),
            action="annotation.retracted",
            object_type="annotation",
            object_id=annotation.pk,
            item_id=task.item_id,
            before=before,
            after={"status": task.status, "annotation_count": task.annotation_count},
        )
    return task


def _check_retractable(annotation: Annotation, reviewer: User, now: Any) -> None:
    if annotation.reviewer_id != reviewer.pk:
        raise SubmissionRejected("You can only undo your own answers.")
    if annotation.retracted_at is not None:
        raise SubmissionRejected("That answer was already undone.")
    if annotation.task.resolved_at is not None:
        raise SubmissionRejected("This item has already been decided; ask a lead to correct its label.")
    if now - annotation.created_at > timedelta(seconds=settings.UNDO_WINDOW_SECONDS):
        raise SubmissionRejected(f"Answers can be undone for {settings.UNDO_WINDOW_SECONDS} seconds only.")


def annotations_withdraw(*, annotations: Sequence[Annotation], actor: Actor, after: dict[str, Any]) -> None:
    """Mark answers undone on a lead's request (sent back), keeping them; one `annotation.retracted`
    event each, with `after`. The caller holds the task's lock and updates its count."""
    now = db_now()
    Annotation.objects.filter(pk__in=[a.pk for a in annotations]).update(retracted_at=now)
    AuditEvent.objects.bulk_create(
        audit_event(
            actor=actor,
            action="annotation.retracted",
            object_type="annotation",
            object_id=a.pk,
            item_id=a.item_id,
            before={"labels": a.labels},
            after=after,
        )
        for a in annotations
    )
