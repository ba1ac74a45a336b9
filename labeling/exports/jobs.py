"""Exports: stream a snapshot variant, or write it to a file in a background job.

Both paths run the same generator (`export_stream`), so they produce the same bytes. Export
files live under settings.EXPORT_DIR, one per (snapshot, format, split, redaction); a job
writes to a temporary file and renames it into place, so a file that exists is complete.
Snapshots never change, which makes the files a cache: a later request for the same variant
reuses the finished file (the sweep deletes files older than EXPORT_FILE_RETENTION_HOURS, and
a later request simply writes it again).
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from reviewapp.audit import Actor, audit_record

from .formats import EXTENSIONS, WRITERS
from .models import DatasetSnapshot, ExportJob, JobStatus
from .rows import row_tuples

PROGRESS_EVERY_SECONDS = 1.0


def export_stream(
    snapshot_id: int,
    fmt: str,
    *,
    split: str | None = None,
    redact_pii: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export as chunks of bytes; `on_rows(n)` is called with the running row count."""
    chunks: Iterable[list[tuple]] = row_tuples(snapshot_id, split or None)
    if on_rows is not None:
        chunks = _counted(chunks, on_rows)
    return WRITERS[fmt](chunks, redact_pii)


def _counted(chunks: Iterable[list[tuple]], on_rows: Callable[[int], None]) -> Iterator[list[tuple]]:
    done = 0
    for rows in chunks:
        yield rows
        done += len(rows)
        on_rows(done)


def rows_in(snapshot: DatasetSnapshot, split: str | None) -> int:
    return snapshot.stats.get("splits", {}).get(split, 0) if split else snapshot.row_count


def file_name(snapshot: DatasetSnapshot, fmt: str, split: str | None, redact_pii: bool) -> str:
    parts = [snapshot.dataset.slug, f"v{snapshot.version}"]
    if split:
        parts.append(split)
    if redact_pii:
        parts.append("redacted")
    return "-".join(parts) + "." + EXTENSIONS[fmt]


def export_path(job: ExportJob) -> Path:
    name = file_name(job.snapshot, job.format, job.split, job.redact_pii)
    return Path(settings.EXPORT_DIR) / job.snapshot.dataset.slug / name


def export_file_ready(job: ExportJob) -> Path | None:
    """The finished file of a job, or None (not done yet, or its file expired)."""
    if job.status != JobStatus.DONE:
        return None
    path = export_path(job)
    return path if path.exists() else None


def export_request(
    *, snapshot: DatasetSnapshot, fmt: str, split: str | None, redact_pii: bool, actor: Actor
) -> ExportJob:
    """The job for this variant, queued unless it is running or its file is ready.

    Locks the job row, so concurrent requests for one variant queue it once.
    """
    from .tasks import export_file

    with transaction.atomic():
        job, created = ExportJob.objects.select_for_update().get_or_create(
            snapshot=snapshot,
            format=fmt,
            split=split or "",
            redact_pii=redact_pii,
            defaults={"rows_total": rows_in(snapshot, split), "requested_by_label": actor.label},
        )
        job.snapshot = snapshot
        if not created and job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            return job
        if not created and job.status == JobStatus.DONE and export_path(job).exists():
            return job
        if not created:
            job.status, job.rows_done, job.error, job.requested_by_label = JobStatus.QUEUED, 0, "", actor.label
            job.queued_at = timezone.now()
            job.save(update_fields=["status", "rows_done", "error", "requested_by_label", "queued_at"])
        audit_record(
            actor=actor,
            action="export.requested",
            object_type="export_job",
            object_id=job.pk,
            after={"snapshot_id": snapshot.pk, "format": fmt, "split": split or "", "redact_pii": redact_pii},
        )
        transaction.on_commit(lambda: export_file.delay(job.pk))
    return job


def export_run(*, job_id: int) -> None:
    """Write the job's file (idempotent: a finished job with its file is left alone).

    No transaction is held: rows are read in short keyset queries and progress is committed
    as it goes, so pollers see it. Two runs of one job (a redelivered message) each write their
    own temporary file and rename it over the same name; the bytes are identical.
    """
    job = ExportJob.objects.select_related("snapshot__dataset").get(pk=job_id)
    final = export_path(job)
    if job.status == JobStatus.DONE and final.exists():
        return
    ExportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1, rows_done=0, error=""
    )
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        digest, size = _write(job, temporary)
        os.replace(temporary, final)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        ExportJob.objects.filter(pk=job.pk).update(
            status=JobStatus.FAILED, error=f"{type(error).__name__}: {error}"[:2000], finished_at=timezone.now()
        )
        raise
    ExportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.DONE,
        rows_done=job.rows_total,
        bytes_written=size,
        sha256=digest,
        file_name=final.name,
        finished_at=timezone.now(),
    )


def _write(job: ExportJob, path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    last_report = time.monotonic()

    def progress(done: int) -> None:
        nonlocal last_report
        if time.monotonic() - last_report >= PROGRESS_EVERY_SECONDS:
            ExportJob.objects.filter(pk=job.pk).update(rows_done=done)
            last_report = time.monotonic()

    stream = export_stream(job.snapshot_id, job.format, split=job.split, redact_pii=job.redact_pii, on_rows=progress)
    with open(path, "wb") as out:
        for data in stream:
            out.write(data)
            digest.update(data)
            size += len(data)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def export_files_prune(*, older_than: timedelta) -> int:
    """Delete finished export files older than `older_than`; their jobs go back to 'not exported'."""
    cutoff = timezone.now() - older_than
    pruned = 0
    for job in ExportJob.objects.select_related("snapshot__dataset").filter(
        status=JobStatus.DONE, finished_at__lt=cutoff
    ):
        export_path(job).unlink(missing_ok=True)
        ExportJob.objects.filter(pk=job.pk, status=JobStatus.DONE).update(status=JobStatus.EXPIRED)
        pruned += 1
    return pruned
