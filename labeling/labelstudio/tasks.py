"""Celery tasks of the Label Studio interop: thin wrappers that take ids and call services.

All run on the `sync` queue. Only `Unavailable` (server down, timeout, 5xx) is retried, with
exponential backoff and jitter; a refused token, a deleted project or a config mismatch is
recorded in the sync log and waits for a lead (retrying would only repeat the error). Every task
is idempotent, so `acks_late` redelivery after a worker died is safe.
"""

from __future__ import annotations

from celery import shared_task

from reviewapp.retry import LATE_ACK, remote_outage

from .client import LabelStudioError, Unavailable
from .models import Connection
from .services import annotations_pull, project_sync, tasks_push

SYNC_TASK_OPTIONS = {"queue": "sync", "time_limit": 900, "soft_time_limit": 840, **remote_outage(Unavailable)}


def _run(service, **kwargs) -> None:  # type: ignore[no-untyped-def]
    try:
        service(**kwargs)
    except Unavailable:
        raise  # retried with backoff
    except LabelStudioError:
        pass  # already in the sync log and on the connection page; a person has to act


@shared_task(name="labelstudio.pull", **SYNC_TASK_OPTIONS)
def pull_connection(connection_id: int, triggered_by: str = "schedule") -> None:
    _run(annotations_pull, connection_id=connection_id, triggered_by=triggered_by)


@shared_task(name="labelstudio.push", **SYNC_TASK_OPTIONS)
def push_tasks(connection_id: int, task_ids: list[int] | None = None, triggered_by: str = "") -> None:
    _run(tasks_push, connection_id=connection_id, task_ids=task_ids, triggered_by=triggered_by)


@shared_task(name="labelstudio.sync_project", **SYNC_TASK_OPTIONS)
def sync_project(connection_id: int, recreate: bool = False, triggered_by: str = "") -> None:
    _run(project_sync, connection_id=connection_id, recreate=recreate, triggered_by=triggered_by)


@shared_task(name="labelstudio.pull_all", queue="sync", time_limit=60, soft_time_limit=50, **LATE_ACK)
def pull_all() -> int:
    """Beat: one pull per active connection (each retried on its own)."""
    ids = list(Connection.objects.filter(is_active=True).values_list("pk", flat=True))
    for connection_id in ids:
        pull_connection.delay(connection_id, "schedule")
    return len(ids)
