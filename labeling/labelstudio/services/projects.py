"""The Label Studio project of a connection, kept in step with the policy version in force."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.functions import Now
from django.urls import reverse

from reviewapp.audit import SYSTEM, audit_record
from reviewapp.content import render_guideline

from ..client import Client, ConfigMismatch, LabelStudioError, ProjectMissing, Refused
from ..labelconfig import config_digest, label_config_for
from ..models import Connection, Project, PushedTask, SyncKind, SyncRun
from .sync_log import sync_run_log


def project_sync(*, connection_id: int, triggered_by: str, recreate: bool = False) -> SyncRun:
    """Make the connection's Label Studio project match the policy version in force (and its
    webhook point here). `recreate`: start a new project, e.g. after one was deleted there."""
    connection = Connection.objects.select_related("policy", "queue").get(pk=connection_id)
    with sync_run_log(connection, SyncKind.PROJECT, triggered_by) as run:
        client = Client(connection)
        project = project_ensure(client, connection, recreate=recreate, repair=True)
        run.counts["project"] = project.ls_project_id
    return run


def project_ensure(client: Client, connection: Connection, *, recreate: bool = False, repair: bool = False) -> Project:
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
            project_mark_missing(current)
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


def project_config_check(client: Client, project: Project) -> None:
    try:
        remote = client.project(project.ls_project_id)
    except ProjectMissing:
        project_mark_missing(project)
        raise
    if config_digest(remote["label_config"]) != config_digest(project.label_config):
        raise _mismatch(project)


def _mismatch(project: Project, detail: str = "") -> LabelStudioError:
    message = (
        f"The labeling config of Label Studio project {project.ls_project_id} no longer matches "
        f"{project.policy_version}: it was edited in Label Studio. Nothing is pulled from it until "
        "'Sync project' puts the policy's config back."
    )
    return ConfigMismatch(f"{message} Label Studio said: {detail}" if detail else message)


def project_mark_missing(project: Project) -> None:
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


def webhook_url(connection: Connection) -> str:
    return connection.callback_base_url + reverse("labelstudio-webhook", args=[connection.pk])
