"""Celery tasks of the review workflow: thin wrappers that call services."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import task_failure, task_retry, task_success

from . import metrics
from .services.leases import SWEEP_BATCH, task_leases_expire


@shared_task(
    name="reviewapp.sweep_expired_leases",
    acks_late=True,  # safe: the sweep is idempotent
    autoretry_for=(Exception,),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
    time_limit=120,
    soft_time_limit=100,
)
def sweep_expired_leases() -> int:
    """Release expired leases in bounded batches; re-enqueue itself while a full batch was found."""
    released = task_leases_expire(limit=SWEEP_BATCH)
    if released == SWEEP_BATCH:
        sweep_expired_leases.apply_async(countdown=1)
    return released


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
