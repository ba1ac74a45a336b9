"""The sync log: every Label Studio run is a `SyncRun` with its counts or its error, and the
connection's status follows the last run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db.models.functions import Now

from reviewapp.db import db_now

from ..client import LabelStudioError
from ..models import Connection, ConnectionStatus, SyncRun


@contextmanager
def sync_run_log(connection: Connection, kind: str, triggered_by: str) -> Iterator[SyncRun]:
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
