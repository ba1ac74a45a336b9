"""Celery tasks of the review workflow: thin wrappers that call services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from celery.signals import task_failure, task_retry, task_success
from django.conf import settings

from . import metrics
from .retry import IDEMPOTENT, LATE_ACK
from .services.ingest_jobs import (
    ingest_chunk_apply,
    ingest_chunk_fail,
    ingest_chunks_resend_stalled,
    ingest_job_fan_out,
)
from .services.leases import SWEEP_BATCH, task_leases_expire


@shared_task(
    name="reviewapp.sweep_expired_leases",
    time_limit=120,
    soft_time_limit=100,
    **IDEMPOTENT,  # the sweep is idempotent
)
def sweep_expired_leases() -> int:
    """Release expired leases in bounded batches; re-enqueue itself while a full batch was found."""
    released = task_leases_expire(limit=SWEEP_BATCH)
    if released == SWEEP_BATCH:
        sweep_expired_leases.apply_async(countdown=1)
    return released


# Ingest tasks are IDEMPOTENT: applying a chunk twice is a no-op, and a killed delivery leaves nothing.
@shared_task(name="reviewapp.ingest_fan_out", time_limit=120, soft_time_limit=100, **IDEMPOTENT)
def ingest_fan_out(job_id: int) -> int:
    """Send one `ingest_apply_chunk` per chunk of a new bulk ingest job."""
    return ingest_job_fan_out(job_id=job_id)


class IngestChunkTask(Task):
    """Once retries are exhausted, the chunk fails with the error; its rows stay for a retry."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        chunk_id = kwargs.get("chunk_id", args[0] if args else None)
        if chunk_id is not None:
            ingest_chunk_fail(chunk_id=chunk_id, error=f"{type(exc).__name__}: {exc}")


@shared_task(
    base=IngestChunkTask,
    name="reviewapp.ingest_apply_chunk",
    time_limit=300,
    soft_time_limit=270,
    **IDEMPOTENT,
)
def ingest_apply_chunk(chunk_id: int) -> bool:
    """Apply one chunk of a bulk ingest job (idempotent: a chunk already applied is skipped)."""
    return ingest_chunk_apply(chunk_id=chunk_id)


@shared_task(name="reviewapp.ingest_resend_stalled", time_limit=120, soft_time_limit=100, **LATE_ACK)
def ingest_resend_stalled() -> int:
    """Beat: re-send chunks whose task was lost (sent long ago, still pending)."""
    return ingest_chunks_resend_stalled(older_than=timedelta(seconds=settings.INGEST_JOB_STALL_SECONDS))


# Task outcomes for /metrics, for every task of every app (the worker imports this module).
@task_success.connect
def _count_success(sender: Any = None, **kwargs: Any) -> None:
    metrics.count("celery_tasks", sender.name, "success")


@task_failure.connect
def _count_failure(sender: Any = None, **kwargs: Any) -> None:
    metrics.count("celery_tasks", sender.name, "failure")


@task_retry.connect
def _count_retry(sender: Any = None, **kwargs: Any) -> None:
    metrics.count("celery_tasks", getattr(sender, "name", "unknown"), "retry")
