"""Celery tasks of the dataset exports: thin, take ids, idempotent (so `acks_late` is safe)."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from reviewapp.audit import Actor
from reviewapp.retry import IDEMPOTENT, LATE_ACK

from .jobs import export_files_prune, export_run
from .models import DeliveryStatus, ExportJob, JobStatus, SnapshotBuild, WebhookDelivery
from .snapshots import SnapshotFilter, snapshot_create
from .webhooks import delivery_attempt

# Messages lost between commit and broker (or a worker killed mid-job) are re-sent by the sweep.
STALE_QUEUED = timedelta(minutes=10)


@shared_task(
    name="exports.build_snapshot",
    time_limit=settings.EXPORT_JOB_TIME_LIMIT,
    soft_time_limit=settings.EXPORT_JOB_TIME_LIMIT - 60,
    **LATE_ACK,
)
def build_snapshot(build_id: int) -> int | None:
    """Build the snapshot a lead or API client requested; returns its id."""
    build = SnapshotBuild.objects.filter(pk=build_id).first()
    if build is None or build.status == JobStatus.DONE:
        return build.snapshot_id if build else None
    SnapshotBuild.objects.filter(pk=build_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).update(
        status=JobStatus.RUNNING, started_at=timezone.now()
    )
    actor = Actor(build.requested_by_id, build.requested_by_label)
    try:
        snapshot = snapshot_create(
            dataset_id=build.dataset_id, filters=SnapshotFilter.from_json(build.filters), actor=actor, build_id=build_id
        )
    except BaseException as error:
        message = " ".join(error.messages) if isinstance(error, ValidationError) else f"{type(error).__name__}: {error}"
        SnapshotBuild.objects.filter(pk=build_id).exclude(status=JobStatus.DONE).update(
            status=JobStatus.FAILED, error=message[:2000], finished_at=timezone.now()
        )
        if isinstance(error, ValidationError):
            return None  # nothing matches any more: a person has to change the filter
        raise
    return snapshot.pk


@shared_task(
    name="exports.export_file",
    time_limit=settings.EXPORT_JOB_TIME_LIMIT,
    soft_time_limit=settings.EXPORT_JOB_TIME_LIMIT - 60,
    **LATE_ACK,
)
def export_file(job_id: int) -> None:
    export_run(job_id=job_id)


@shared_task(bind=True, name="exports.deliver_webhook", time_limit=60, soft_time_limit=50, **LATE_ACK)
def deliver_webhook(self, delivery_id: int) -> None:  # type: ignore[no-untyped-def]
    countdown = delivery_attempt(delivery_id=delivery_id)
    if countdown is not None:
        raise self.retry(countdown=countdown, max_retries=None)


# IDEMPOTENT (retried on a broker error): enqueuing a delivery again is harmless, see below.
@shared_task(name="exports.deliver_webhooks_fan_out", time_limit=120, soft_time_limit=100, **IDEMPOTENT)
def deliver_webhooks_fan_out(delivery_ids: list[int]) -> int:
    """Enqueue one delivery task per id (a large batch of events, see `webhooks.events_emit`).

    Safe to repeat: a redelivered fan-out may enqueue a delivery twice; an attempt that finds it
    already sent does nothing, and receivers deduplicate by the event id, as with any retry."""
    for delivery_id in delivery_ids:
        deliver_webhook.delay(delivery_id)
    return len(delivery_ids)


@shared_task(name="exports.sweep", time_limit=120, soft_time_limit=100, **LATE_ACK)
def sweep() -> dict[str, int]:
    """Beat: re-send lost work (queued builds and exports, overdue deliveries); prune old files."""
    now = timezone.now()
    builds = list(
        SnapshotBuild.objects.filter(status=JobStatus.QUEUED, created_at__lt=now - STALE_QUEUED).values_list(
            "pk", flat=True
        )
    )
    for build_id in builds:
        build_snapshot.delay(build_id)
    exports = list(
        ExportJob.objects.filter(status=JobStatus.QUEUED, queued_at__lt=now - STALE_QUEUED).values_list("pk", flat=True)
    )
    for job_id in exports:
        export_file.delay(job_id)
    overdue = list(
        WebhookDelivery.objects.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=now - STALE_QUEUED),
            status=DeliveryStatus.PENDING,
            created_at__lt=now - STALE_QUEUED,
        ).values_list("pk", flat=True)
    )
    for delivery_id in overdue:
        deliver_webhook.delay(delivery_id)
    pruned = export_files_prune(older_than=timedelta(hours=settings.EXPORT_FILE_RETENTION_HOURS))
    return {"builds": len(builds), "exports": len(exports), "deliveries": len(overdue), "pruned": pruned}
