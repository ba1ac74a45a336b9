"""Label Studio transitions: connect, keep the project in step with the policy, push, pull.

Network calls to Label Studio never run inside a database transaction: each service reads what
it needs, talks to Label Studio, then records the outcome in short transactions. Every run is
written to the sync log (`SyncRun`) with its counts or its error, and the connection's status
follows the last run. Re-running any of them is safe: pushes are recorded per (connection,
task), pulled annotations per (project, Label Studio annotation id), and every answer goes
through `annotation_submit` with a deterministic submission id.
"""

from __future__ import annotations

import hmac
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest, Now
from django.urls import reverse

from labeling.models import AnnotationSource, Policy
from labeling.services.annotations import SubmissionRejected, annotation_submit
from reviewapp.audit import SYSTEM, Actor, audit_event, audit_record, audit_record_many
from reviewapp.content import render_guideline
from reviewapp.db import db_now
from reviewapp.models import Queue, ReviewTask, TaskStatus

from .addresses import check_base_url
from .client import ANNOTATION_ACTIONS, Client, LabelStudioError, ProjectMissing, Refused, ls_datetime
from .labelconfig import ResultUnreadable, answer_from_result, config_digest, label_config_for
from .models import (
    Connection,
    ConnectionStatus,
    ExternalReviewer,
    ImportOutcome,
    Project,
    PulledAnnotation,
    PushedTask,
    SyncKind,
    SyncRun,
    validate_token_env_var,
)
from .pushing import task_payload

PUSH_CHUNK = 100
# Pulls re-read this much before the cursor: an annotation committed in Label Studio while a
# pull was reading could carry an updated_at just below the newest one seen. Re-reading is free
# (already-pulled annotations are skipped by id and updated_at).
PULL_OVERLAP_SECONDS = 120
# Namespace of submission ids derived from Label Studio annotations (uuid5; never change it).
SUBMISSION_NAMESPACE = uuid.UUID("6f1c7a52-3f55-4d0e-9a57-5b1f2d3c8e41")
TASK_MARKER = "reviewapp_task_id"


# --------------------------------------------------------------------------- connections


def connection_create(
    *,
    name: str,
    base_url: str,
    policy: Policy,
    actor: Actor,
    token: str = "",
    token_env_var: str = "",
    queue: Queue | None = None,
    callback_base_url: str = "",
) -> Connection:
    """Store a connection; the token is encrypted at once and never written anywhere else.

    Raises ValidationError for a URL the address policy refuses (addresses.py: public https
    servers, or hosts an operator allowed) and for a token variable outside LABEL_STUDIO_TOKEN_*.
    """
    if not token and not token_env_var:
        raise ValidationError("Give an API token or the name of an environment variable holding it.")
    if token_env_var:
        validate_token_env_var(token_env_var)
    check_base_url(base_url)
    connection = Connection(
        name=name,
        base_url=base_url.rstrip("/"),
        token_env_var=token_env_var,
        policy=policy,
        queue=queue,
        callback_base_url=callback_base_url.rstrip("/"),
    )
    connection.set_api_token(token)
    connection.new_webhook_secret()
    with transaction.atomic():
        connection.save(force_insert=True)
        audit_record(
            actor=actor,
            action="labelstudio.connection_created",
            object_type="labelstudio_connection",
            object_id=connection.pk,
            after={"name": name, "base_url": connection.base_url, "policy": policy.key, "token_env_var": token_env_var},
        )
    return connection


def connection_test(*, connection_id: int, triggered_by: str) -> SyncRun:
    """Check the URL, the token and, once a project exists, that its config still matches."""
    connection = Connection.objects.get(pk=connection_id)
    with _sync_run(connection, SyncKind.TEST, triggered_by) as run:
        client = Client(connection)
        run.counts["user"] = client.whoami()["email"]
        current = connection.projects.filter(is_current=True, missing_since__isnull=True).first()
        if current is not None:
            _check_config(client, current)
            run.counts["project"] = current.ls_project_id
    return run


def webhook_accept(*, connection_id: int, secret: str, action: str) -> bool:
    """Authenticate a Label Studio webhook and enqueue a pull for annotation events.

    Cheap and idempotent: any number of deliveries enqueue incremental pulls, which import each
    annotation once. Raises PermissionDenied for an unknown connection or a wrong secret.
    """
    connection = Connection.objects.filter(pk=connection_id, is_active=True).first()
    # Bytes, not str: compare_digest refuses non-ASCII str, and the header is whatever a caller sent.
    given = secret.encode("utf-8", "surrogatepass")
    if connection is None or not secret or not hmac.compare_digest(given, connection.webhook_secret().encode()):
        raise PermissionDenied("Unknown connection or wrong webhook secret.")
    Connection.objects.filter(pk=connection.pk).update(last_webhook_at=Now())
    if action not in ANNOTATION_ACTIONS:
        return False
    from .tasks import pull_connection

    transaction.on_commit(lambda: pull_connection.delay(connection.pk, "webhook"))
    return True


def webhook_url(connection: Connection) -> str:
    return connection.callback_base_url + reverse("labelstudio-webhook", args=[connection.pk])


# --------------------------------------------------------------------------- the sync log


@contextmanager
def _sync_run(connection: Connection, kind: str, triggered_by: str) -> Iterator[SyncRun]:
    """Log a run; on error record it (and the connection's status) before re-raising."""
    run = SyncRun.objects.create(connection=connection, kind=kind, triggered_by=triggered_by[:200], counts={})
    try:
        yield run
    except LabelStudioError as error:
        _finish(run, ok=False, error=str(error), status=error.status)
        raise
    except Exception as error:
        _finish(run, ok=False, error=f"Unexpected error: {type(error).__name__}: {error}"[:2000], status=None)
        raise
    _finish(run, ok=True, error="", status=ConnectionStatus.OK)


def _finish(run: SyncRun, *, ok: bool, error: str, status: str | None) -> None:
    run.ok, run.error, run.finished_at = ok, error, db_now()
    run.save(update_fields=["ok", "error", "finished_at", "counts"])
    if status is not None:
        Connection.objects.filter(pk=run.connection_id).exclude(status=status, status_detail=error).update(
            status=status, status_detail=error, status_changed_at=Now()
        )


# --------------------------------------------------------------------------- projects


def project_sync(*, connection_id: int, triggered_by: str, recreate: bool = False) -> SyncRun:
    """Make the connection's Label Studio project match the policy version in force (and its
    webhook point here). `recreate`: start a new project, e.g. after one was deleted there."""
    connection = Connection.objects.select_related("policy", "queue").get(pk=connection_id)
    with _sync_run(connection, SyncKind.PROJECT, triggered_by) as run:
        client = Client(connection)
        project = _project_ensure(client, connection, recreate=recreate, repair=True)
        run.counts["project"] = project.ls_project_id
    return run


def _project_ensure(client: Client, connection: Connection, *, recreate: bool = False, repair: bool = False) -> Project:
    """The current project, created or updated for the policy version in force.

    A new version updates the project in place while it has no annotations (Label Studio checks
    that existing labels stay valid), and otherwise gets a new project; the old one stays and is
    still pulled. `repair` also re-applies the config if it was edited in Label Studio.
    """
    version = connection.policy.current_version()
    if version is None:
        raise LabelStudioError(f"Policy {connection.policy.key!r} has no version in force; publish one first.")
    current = connection.projects.filter(is_current=True).first()
    if current is not None and current.missing_since is None and not recreate:
        try:
            remote = client.project(current.ls_project_id)
        except ProjectMissing:
            _mark_missing(current)
            raise
        same_version = current.policy_version_id == version.pk
        drifted = config_digest(remote["label_config"]) != config_digest(current.label_config)
        if same_version and not drifted:
            pass
        elif same_version and repair:
            _update_project(client, current, version, reason="config edited in Label Studio")
        elif same_version:
            raise _mismatch(current)
        elif remote["annotations"] == 0:
            _update_project(client, current, version, reason="new policy version")
        else:
            current = _create_project(client, connection, version, replacing=current)
    else:
        current = _create_project(client, connection, version, replacing=current)
    if connection.callback_base_url and (repair or current.ls_webhook_id is None):
        url, secret = webhook_url(connection), connection.webhook_secret()
        hook_id = client.webhook_ensure(current.ls_project_id, current.ls_webhook_id, url=url, secret=secret)
        Project.objects.filter(pk=current.pk).update(ls_webhook_id=hook_id)
        current.ls_webhook_id = hook_id
    return current


def _project_fields(connection: Connection, version: Any) -> dict[str, str]:
    return {
        "title": f"{connection.policy.name} v{version.number} · {connection.name}",
        "label_config": label_config_for(version),
        "instructions": str(render_guideline(version.guideline)),
    }


def _create_project(client: Client, connection: Connection, version: Any, *, replacing: Project | None) -> Project:
    fields = _project_fields(connection, version)
    required = connection.queue.required_annotations if connection.queue else 1
    ls_id = client.project_create(maximum_annotations=required, **fields)
    with transaction.atomic():
        if replacing is not None:
            Project.objects.filter(pk=replacing.pk).update(is_current=False)
        project = Project.objects.create(
            connection=connection, ls_project_id=ls_id, policy_version=version, label_config=fields["label_config"]
        )
        audit_record(
            actor=SYSTEM,
            action="labelstudio.project_created",
            object_type="labelstudio_project",
            object_id=project.pk,
            before={"ls_project_id": replacing.ls_project_id} if replacing else None,
            after={"ls_project_id": ls_id, "policy_version_id": version.pk, "connection": connection.name},
        )
    return project


def _update_project(client: Client, project: Project, version: Any, *, reason: str) -> None:
    fields = _project_fields(project.connection, version)
    try:
        client.project_update(project.ls_project_id, **fields)
    except Refused as error:
        raise _mismatch(project, detail=str(error)) from None
    with transaction.atomic():
        before = {"policy_version_id": project.policy_version_id}
        project.policy_version = version
        project.label_config = fields["label_config"]
        project.save(update_fields=["policy_version", "label_config"])
        audit_record(
            actor=SYSTEM,
            action="labelstudio.project_updated",
            object_type="labelstudio_project",
            object_id=project.pk,
            before=before,
            after={"policy_version_id": version.pk, "reason": reason},
        )


def _check_config(client: Client, project: Project) -> None:
    try:
        remote = client.project(project.ls_project_id)
    except ProjectMissing:
        _mark_missing(project)
        raise
    if config_digest(remote["label_config"]) != config_digest(project.label_config):
        raise _mismatch(project)


def _mismatch(project: Project, detail: str = "") -> LabelStudioError:
    from .client import ConfigMismatch

    message = (
        f"The labeling config of Label Studio project {project.ls_project_id} no longer matches "
        f"{project.policy_version}: it was edited in Label Studio. Nothing is pulled from it until "
        "'Sync project' puts the policy's config back."
    )
    return ConfigMismatch(f"{message} Label Studio said: {detail}" if detail else message)


def _mark_missing(project: Project) -> None:
    """Label Studio lost the project: stop pulling it and let its open tasks be pushed again."""
    with transaction.atomic():
        if Project.objects.filter(pk=project.pk, missing_since__isnull=True).update(missing_since=Now()):
            PushedTask.objects.filter(project=project).update(is_live=False)
            audit_record(
                actor=SYSTEM,
                action="labelstudio.project_missing",
                object_type="labelstudio_project",
                object_id=project.pk,
                after={"ls_project_id": project.ls_project_id},
            )


# --------------------------------------------------------------------------- push


def tasks_push(*, connection_id: int, triggered_by: str, task_ids: list[int] | None = None) -> SyncRun:
    """Send open review tasks to Label Studio: `task_ids`, or the connection's queue.

    Tasks already pushed by this connection are skipped, so pushing twice creates nothing.
    Each chunk is recorded before it is sent (`ls_task_id` empty) and completed after; a push
    that died in between is reconciled against Label Studio first, never sent twice.
    """
    connection = Connection.objects.select_related("policy", "queue").get(pk=connection_id)
    with _sync_run(connection, SyncKind.PUSH, triggered_by) as run:
        client = Client(connection)
        project = _project_ensure(client, connection)
        _reconcile_in_flight(client, connection)
        counts: Counter[str] = Counter()
        while True:
            claimed = _claim_chunk(connection, project, task_ids)
            if not claimed:
                break
            _send_chunk(client, project, claimed, counts)
            run.counts = dict(counts)
    return run


def _claim_chunk(connection: Connection, project: Project, task_ids: list[int] | None) -> list[PushedTask]:
    """Record up to PUSH_CHUNK not-yet-pushed open tasks as in flight. Locks the connection row
    so that concurrent pushes never claim the same task."""
    with transaction.atomic():
        Connection.objects.select_for_update().get(pk=connection.pk)
        tasks = ReviewTask.objects.filter(policy_id=connection.policy_id, status=TaskStatus.OPEN)
        if task_ids is not None:
            tasks = tasks.filter(pk__in=task_ids)
        elif connection.queue_id is not None:
            tasks = tasks.filter(queue_id=connection.queue_id)
        else:
            return []
        pushed = PushedTask.objects.filter(connection=connection, is_live=True).values("task_id")
        chosen = list(tasks.exclude(pk__in=pushed).order_by("-priority", "due_at", "pk").values_list("pk", flat=True))
        return PushedTask.objects.bulk_create(
            [PushedTask(connection=connection, project=project, task_id=pk) for pk in chosen[:PUSH_CHUNK]]
        )


def _send_chunk(client: Client, project: Project, claimed: list[PushedTask], counts: Counter[str]) -> None:
    tasks = {
        task.pk: task
        for task in ReviewTask.objects.select_related("item", "decision", "queue").filter(
            pk__in=[row.task_id for row in claimed]
        )
    }
    payloads = [task_payload(tasks[row.task_id], project.policy_version, marker=TASK_MARKER) for row in claimed]
    try:
        ls_ids = client.tasks_import(project.ls_project_id, payloads)
    except Refused:
        PushedTask.objects.filter(pk__in=[row.pk for row in claimed]).delete()  # nothing was created
        raise
    except ProjectMissing:
        PushedTask.objects.filter(pk__in=[row.pk for row in claimed]).delete()
        _mark_missing(project)
        raise
    # Unavailable: Label Studio may or may not have created them; the rows stay in flight and
    # the next push or pull reconciles them.
    with transaction.atomic():
        for row, ls_id in zip(claimed, ls_ids, strict=True):
            row.ls_task_id = ls_id
        PushedTask.objects.bulk_update(claimed, ["ls_task_id"])
        audit_record_many(
            audit_event(
                actor=SYSTEM,
                action="task.pushed_to_label_studio",
                object_type="task",
                object_id=row.task_id,
                item_id=tasks[row.task_id].item_id,
                after={"connection_id": project.connection_id, "ls_project": project.ls_project_id, "ls_task": ls_id},
            )
            for row, ls_id in zip(claimed, ls_ids, strict=True)
        )
    counts["pushed"] += len(claimed)
    counts["with_prediction"] += sum(1 for payload in payloads if payload.get("predictions"))


def _reconcile_in_flight(client: Client, connection: Connection) -> None:
    """Finish pushes that died after sending: adopt the Label Studio tasks that were created,
    and forget the rest so they are pushed again."""
    in_flight = PushedTask.objects.filter(connection=connection, ls_task_id__isnull=True, is_live=True)
    for project in Project.objects.filter(pk__in=in_flight.values("project_id")):
        try:
            found = client.tasks_by_marker(project.ls_project_id, TASK_MARKER)
        except ProjectMissing:
            _mark_missing(project)
            continue
        with transaction.atomic():
            for row in in_flight.filter(project=project).select_for_update():
                if row.task_id in found:
                    row.ls_task_id = found[row.task_id]
                    row.save(update_fields=["ls_task_id"])
                else:
                    row.delete()


# --------------------------------------------------------------------------- pull


def annotations_pull(*, connection_id: int, triggered_by: str) -> SyncRun:
    """Import Label Studio annotations changed since the last pull of each project.

    Idempotent and incremental; see `_pull_annotation` for what each annotation becomes.
    A project whose config was edited in Label Studio is not pulled (ConfigMismatch), so no
    answer is read under the wrong policy version.
    """
    connection = Connection.objects.get(pk=connection_id)
    with _sync_run(connection, SyncKind.PULL, triggered_by) as run:
        client = Client(connection)
        _reconcile_in_flight(client, connection)
        counts: Counter[str] = Counter()
        _retry_waiting(connection, counts)  # answers of earlier pulls first
        projects = connection.projects.filter(missing_since__isnull=True).select_related("policy_version")
        for project in projects.order_by("pk"):
            _pull_project(client, project, counts)
            run.counts = dict(counts)
        Connection.objects.filter(pk=connection.pk).update(last_pull_at=Now())
    return run


def _pull_project(client: Client, project: Project, counts: Counter[str]) -> None:
    _check_config(client, project)
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
