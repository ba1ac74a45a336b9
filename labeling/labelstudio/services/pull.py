"""Pull: Label Studio annotations become annotations here through `annotation_submit`, recorded
per (project, Label Studio annotation id) with a deterministic submission id."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest, Now

from labeling.models import AnnotationSource
from labeling.services.annotations import SubmissionRejected, annotation_submit
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.models import ReviewTask, TaskStatus

from ..client import Client, LabelStudioError, ls_datetime
from ..labelconfig import ResultUnreadable, answer_from_result
from ..models import (
    Connection,
    ExternalReviewer,
    ImportOutcome,
    Project,
    PulledAnnotation,
    PushedTask,
    SyncKind,
    SyncRun,
)
from .projects import project_config_check
from .push import pushed_tasks_reconcile
from .sync_log import sync_run_log

# Pulls re-read this much before the cursor: an annotation committed in Label Studio while a
# pull was reading could carry an updated_at just below the newest one seen. Re-reading is free
# (already-pulled annotations are skipped by id and updated_at).
PULL_OVERLAP_SECONDS = 120
# Namespace of submission ids derived from Label Studio annotations (uuid5; never change it).
SUBMISSION_NAMESPACE = uuid.UUID("6f1c7a52-3f55-4d0e-9a57-5b1f2d3c8e41")


def annotations_pull(*, connection_id: int, triggered_by: str) -> SyncRun:
    """Import Label Studio annotations changed since the last pull of each project.

    Idempotent and incremental; see `_pull_annotation` for what each annotation becomes.
    A project whose config was edited in Label Studio is not pulled (ConfigMismatch), so no
    answer is read under the wrong policy version.
    """
    connection = Connection.objects.get(pk=connection_id)
    with sync_run_log(connection, SyncKind.PULL, triggered_by) as run:
        client = Client(connection)
        pushed_tasks_reconcile(client, connection)
        counts: Counter[str] = Counter()
        _retry_waiting(connection, counts)  # answers of earlier pulls first
        projects = connection.projects.filter(missing_since__isnull=True).select_related("policy_version")
        for project in projects.order_by("pk"):
            _pull_project(client, project, counts)
            run.counts = dict(counts)
        Connection.objects.filter(pk=connection.pk).update(last_pull_at=Now())
    return run


def _pull_project(client: Client, project: Project, counts: Counter[str]) -> None:
    project_config_check(client, project)
    since = project.pull_cursor
    if since is not None:
        since -= _overlap()
    newest = None
    rows = PushedTask.objects.filter(project=project, ls_task_id__isnull=False)
    pushed = {row.ls_task_id: row for row in rows.only("pk", "task_id", "ls_task_id", "project_id")}
    for ls_task in client.tasks_changed_since(project.ls_project_id, since):
        updated = ls_datetime(ls_task["updated_at"])
        newest = updated if newest is None else max(newest, updated)
        row = pushed.get(int(ls_task["id"]))
        if row is None:
            counts["tasks_not_pushed_by_reviewapp"] += 1
            continue
        for raw in ls_task.get("annotations") or []:
            _pull_annotation(client, project, row, raw, counts)
    if newest is not None:
        # Monotonic: a slower concurrent pull can never move the cursor back.
        # (GREATEST ignores NULL, so a first pull simply sets it.)
        Project.objects.filter(pk=project.pk).update(pull_cursor=Greatest(F("pull_cursor"), Value(newest)))


def _overlap() -> Any:
    from datetime import timedelta

    return timedelta(seconds=PULL_OVERLAP_SECONDS)


@dataclass(frozen=True)
class _Seen:
    ls_annotation_id: int
    updated_at: Any
    ls_user_id: int
    payload: dict[str, Any]


def _seen(raw: dict[str, Any]) -> _Seen:
    completed_by = raw.get("completed_by")
    user_id = completed_by.get("id") if isinstance(completed_by, dict) else completed_by
    if user_id is None:
        raise LabelStudioError(f"Label Studio annotation {raw['id']} has no author (completed_by); cannot map it.")
    return _Seen(
        ls_annotation_id=int(raw["id"]),
        updated_at=ls_datetime(raw.get("updated_at") or raw["created_at"]),
        ls_user_id=int(user_id),
        payload={
            "result": raw.get("result") or [],
            "was_cancelled": bool(raw.get("was_cancelled")),
            "lead_time": raw.get("lead_time"),
        },
    )


def _pull_annotation(
    client: Client, project: Project, pushed: PushedTask, raw: dict[str, Any], counts: Counter[str]
) -> None:
    """One Label Studio annotation:

    * new → submitted as the mapped reviewer's answer (or recorded as skipped in Label Studio,
      invalid, refused, or waiting for another reviewer's lease to end);
    * edited after it was recorded → the first answer stands (answers here are immutable once
      the undo window is over, and consensus may already rest on it); the edit is written to the
      audit log as `labelstudio.annotation_changed` for a lead to see;
    * edited before it could be recorded (waiting, invalid, skipped) → the new version is tried.
    """
    seen = _seen(raw)
    existing = PulledAnnotation.objects.filter(project=project, ls_annotation_id=seen.ls_annotation_id).first()
    if existing is not None and existing.ls_updated_at >= seen.updated_at:
        counts["unchanged"] += 1
        return
    if existing is not None and existing.outcome in (ImportOutcome.IMPORTED, ImportOutcome.REJECTED):
        _record_edit(existing, seen, counts)
        return
    reviewer = _external_reviewer(client, project.connection, seen.ls_user_id)
    try:
        with transaction.atomic():
            outcome = _import(project, pushed, reviewer, seen, existing)
    except IntegrityError:
        outcome = "unchanged"  # a concurrent pull recorded it first
    counts[outcome] += 1


def submission_id_for(base_url: str, ls_annotation_id: int, updated_at: Any) -> uuid.UUID:
    """Deterministic: the same Label Studio annotation version always maps to the same id."""
    return uuid.uuid5(SUBMISSION_NAMESPACE, f"{base_url.rstrip('/')}|{ls_annotation_id}|{updated_at.isoformat()}")


def _import(
    project: Project, pushed: PushedTask, external: ExternalReviewer, seen: _Seen, existing: PulledAnnotation | None
) -> str:
    """Submit one answer and record what became of it; call inside a transaction."""
    outcome, detail, annotation = _submit(project, pushed, external, seen)
    row = existing or PulledAnnotation(project=project, pushed_task=pushed, ls_annotation_id=seen.ls_annotation_id)
    row.external_reviewer = external
    row.annotation = annotation
    row.outcome, row.detail, row.payload = outcome, detail, seen.payload
    row.first_updated_at = row.ls_updated_at = seen.updated_at
    row.save()
    return str(outcome)


def _submit(project: Project, pushed: PushedTask, external: ExternalReviewer, seen: _Seen) -> tuple[str, str, Any]:
    if seen.payload["was_cancelled"]:
        return ImportOutcome.CANCELLED, "", None
    try:
        answer = answer_from_result(seen.payload["result"])
    except ResultUnreadable as error:
        return ImportOutcome.INVALID, str(error), None
    lead_time = seen.payload.get("lead_time")
    try:
        result = annotation_submit(
            task_id=pushed.task_id,
            reviewer=external.reviewer,
            submission_id=submission_id_for(project.connection.api_url, seen.ls_annotation_id, seen.updated_at),
            labels=answer.labels,
            severity=answer.severity,
            rationale=answer.rationale,
            handle_time_ms=int(lead_time * 1000) if isinstance(lead_time, int | float) else None,
            policy_version_id=project.policy_version_id,
            source=AnnotationSource.LABEL_STUDIO,
        )
    except ValidationError as error:
        return ImportOutcome.INVALID, "; ".join(error.messages), None
    except SubmissionRejected as error:
        outcome = ImportOutcome.WAITING if _held_by_someone_else(pushed.task_id, external) else ImportOutcome.REJECTED
        return outcome, str(error), None
    return ImportOutcome.IMPORTED, "", result.annotation


def _held_by_someone_else(task_id: int, external: ExternalReviewer) -> bool:
    """An open task leased to another reviewer right now: the answer can be recorded later."""
    return ReviewTask.objects.filter(
        Q(pk=task_id, status=TaskStatus.OPEN, lease_expires_at__gt=Now()) & ~Q(leased_by=external.reviewer_id)
    ).exists()


def _retry_waiting(connection: Connection, counts: Counter[str]) -> None:
    """Answers that met another reviewer's lease: submit them once that lease is gone."""
    waiting = PulledAnnotation.objects.filter(
        project__connection=connection, outcome=ImportOutcome.WAITING
    ).select_related("project", "project__connection", "pushed_task", "external_reviewer__reviewer")
    for row in waiting:
        if _held_by_someone_else(row.pushed_task.task_id, row.external_reviewer):
            counts["still_waiting"] += 1
            continue
        seen = _Seen(row.ls_annotation_id, row.first_updated_at, row.external_reviewer.ls_user_id, row.payload)
        with transaction.atomic():
            locked = PulledAnnotation.objects.select_for_update().get(pk=row.pk)
            if locked.outcome != ImportOutcome.WAITING:
                continue
            counts[f"retried_{_import(row.project, row.pushed_task, row.external_reviewer, seen, locked)}"] += 1


def _record_edit(existing: PulledAnnotation, seen: _Seen, counts: Counter[str]) -> None:
    with transaction.atomic():
        row = (
            PulledAnnotation.objects.select_for_update(of=("self",))
            .select_related("pushed_task__task")
            .get(pk=existing.pk)
        )
        if row.ls_updated_at >= seen.updated_at:
            counts["unchanged"] += 1
            return
        changed = (row.payload.get("result"), row.payload.get("was_cancelled")) != (
            seen.payload["result"],
            seen.payload["was_cancelled"],
        )
        row.ls_updated_at = seen.updated_at
        row.save(update_fields=["ls_updated_at"])
        if not changed:
            counts["unchanged"] += 1
            return
        audit_record(
            actor=Actor.of(row.external_reviewer.reviewer),
            action="labelstudio.annotation_changed",
            object_type="annotation",
            object_id=row.annotation_id or f"ls:{row.ls_annotation_id}",
            item_id=row.pushed_task.task.item_id,
            before={"result": row.payload.get("result"), "was_cancelled": row.payload.get("was_cancelled")},
            after={
                **seen.payload,
                "ls_annotation_id": row.ls_annotation_id,
                "ls_updated_at": seen.updated_at,
                "kept": "the first answer; edits in Label Studio after import are recorded, not applied",
            },
        )
    counts["changed_after_import"] += 1


def _external_reviewer(client: Client, connection: Connection, ls_user_id: int) -> ExternalReviewer:
    """The reviewer behind a Label Studio user; created on first sight (login-less user)."""
    server = connection.api_url
    found = ExternalReviewer.objects.select_related("reviewer").filter(server_url=server, ls_user_id=ls_user_id).first()
    if found is not None:
        return found
    email = client.user(ls_user_id)["email"]  # network: before the transaction
    host = urlsplit(server).netloc.replace(":", "_")
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=f"ls-{ls_user_id}-{host}"[:150], defaults={"email": email})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        mapping, created = ExternalReviewer.objects.get_or_create(
            server_url=server, ls_user_id=ls_user_id, defaults={"reviewer": user, "email": email}
        )
        if created:
            audit_record(
                actor=SYSTEM,
                action="labelstudio.reviewer_mapped",
                object_type="user",
                object_id=mapping.reviewer_id,
                after={"server": server, "ls_user_id": ls_user_id, "email": email},
            )
    return ExternalReviewer.objects.select_related("reviewer").get(pk=mapping.pk)
