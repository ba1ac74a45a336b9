"""Push: open review tasks become Label Studio tasks, recorded per (connection, task) so a
re-run never sends one twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db import transaction

from labeling.models import PolicyVersion
from reviewapp.audit import SYSTEM, audit_event, audit_record_many
from reviewapp.models import ReviewTask, TaskStatus

from ..client import Client, ProjectMissing, Refused
from ..labelconfig import choice_results, context_text
from ..models import Connection, Project, PushedTask, SyncKind, SyncRun
from .projects import project_ensure, project_mark_missing
from .sync_log import sync_run_log

PUSH_CHUNK = 100
TASK_MARKER = "reviewapp_task_id"


def tasks_push(*, connection_id: int, triggered_by: str, task_ids: list[int] | None = None) -> SyncRun:
    """Send open review tasks to Label Studio: `task_ids`, or the connection's queue.

    Tasks already pushed by this connection are skipped, so pushing twice creates nothing.
    Each chunk is recorded before it is sent (`ls_task_id` empty) and completed after; a push
    that died in between is reconciled against Label Studio first, never sent twice.
    """
    connection = Connection.objects.select_related("policy", "queue").get(pk=connection_id)
    with sync_run_log(connection, SyncKind.PUSH, triggered_by) as run:
        client = Client(connection)
        project = project_ensure(client, connection)
        pushed_tasks_reconcile(client, connection)
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
        project_mark_missing(project)
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


def pushed_tasks_reconcile(client: Client, connection: Connection) -> None:
    """Finish pushes that died after sending: adopt the Label Studio tasks that were created,
    and forget the rest so they are pushed again."""
    in_flight = PushedTask.objects.filter(connection=connection, ls_task_id__isnull=True, is_live=True)
    for project in Project.objects.filter(pk__in=in_flight.values("project_id")):
        try:
            found = client.tasks_by_marker(project.ls_project_id, TASK_MARKER)
        except ProjectMissing:
            project_mark_missing(project)
            continue
        with transaction.atomic():
            for row in in_flight.filter(project=project).select_for_update():
                if row.task_id in found:
                    row.ls_task_id = found[row.task_id]
                    row.save(update_fields=["ls_task_id"])
                else:
                    row.delete()


def task_payload(task: ReviewTask, version: PolicyVersion, *, marker: str) -> dict[str, Any]:
    """A Label Studio task for `task` (needs item, decision and queue loaded).

    The model's prediction becomes a pre-annotation with its model as `model_version`, unless
    the queue is blind (reviewers there must not see model output) or the prediction is not a
    label of this policy version. `data[marker]` holds the review task id, which is how an
    interrupted push is reconciled.
    """
    item = task.item
    payload: dict[str, Any] = {
        "data": {
            "text": item.text or item.title,
            "title": item.title,
            "context": context_text(item.context),
            "media_urls": list(item.media_urls),
            "item": f"{item.source}:{item.external_id}",
            "queue": task.queue.slug,
            "reason": task.reason,
            marker: task.pk,
        },
        "meta": {"reviewapp_item_id": item.pk, "policy_version": version.number},
    }
    decision = task.decision
    if decision is not None and not task.queue.blind_review and decision.predicted_label in version.label_values:
        payload["predictions"] = [
            {
                "model_version": f"{decision.model_name}@{decision.model_version}",
                "score": decision.score,
                "result": choice_results([decision.predicted_label]),
            }
        ]
    return payload
