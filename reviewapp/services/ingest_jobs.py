"""Bulk ingest jobs: large upstream backfills, accepted at once and applied by workers in chunks.

`POST /api/v1/ingest-jobs` checks every row on receipt with the validator of
`POST /api/v1/decisions` and stores the valid rows, in chunks of INGEST_JOB_CHUNK_ROWS, in the
transaction that creates the job: once the 202 is sent, nothing accepted can be lost. After
commit a fan-out task sends one `reviewapp.ingest_apply_chunk` task per chunk to the `ingest`
queue.

A chunk is applied by `decisions_ingest` inside one transaction that also marks the chunk done
and adds its counts to the job. However often its task is delivered (redelivery after a worker
died, a re-send by the sweep, two deliveries at once), a chunk is applied once: later
deliveries find it done, and a delivery killed half-way leaves nothing behind. Decisions are
idempotent by identity in any case.

A chunk stays pending when its message is lost: the web process died between commit and the
fan-out, or a worker's pool process was killed alone (Celery then acknowledges the message as
failed). `ingest_chunks_resend_stalled` (beat, every minute) re-sends chunks whose task was sent
more than INGEST_JOB_STALL_SECONDS ago. A chunk fails, its rows kept, when its task keeps
raising (once Celery's retries are spent) or its deliveries keep dying (out of memory, say;
after MAX_ATTEMPTS); `ingest_job_retry` (an admin action) sends failed chunks again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Now

from ..audit import SYSTEM, Actor, audit_record
from ..context import current_request_id
from ..errors import Invalid
from ..models import IngestChunk, IngestChunkStatus, IngestJob, IngestJobStatus, ServiceToken
from .ingest import IngestResult, decisions_ingest
from .validation import RowError, check_decision_row

# Above Celery's own tries (1 + 5 retries): a task that keeps raising fails with its error first;
# this catches deliveries that keep dying before they can report anything.
MAX_ATTEMPTS = 10
ERRORS_PAGE = 1000
RESEND_BATCH = 5000


@dataclass(frozen=True)
class UnreadableRow:
    """A row that could not be parsed at all (an NDJSON line that is not JSON): reported, never stored."""

    message: str


class NoValidRows(Invalid):
    """No row of a job passed the checks on receipt, so nothing was stored. The API body quotes
    the first ERRORS_PAGE row errors; `errors` keeps them all."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("No row is valid; nothing was stored.", rows_rejected=len(errors), errors=errors[:ERRORS_PAGE])
        self.errors = errors


def ingest_job_create(*, rows: Sequence[Any], actor: Actor, token: ServiceToken | None = None) -> IngestJob:
    """Check `rows` as POST /api/v1/decisions does and store the valid ones in chunks of a new job.

    Raises NoValidRows, storing nothing, when no row is valid. Opens one durable transaction;
    the fan-out task is sent after commit. Rows refused here are kept on the job as errors.
    """
    valid, errors = _check_on_receipt(rows)
    if not valid:
        raise NoValidRows(errors)
    size = settings.INGEST_JOB_CHUNK_ROWS
    parts = [valid[start : start + size] for start in range(0, len(valid), size)]
    with transaction.atomic(durable=True):
        job = IngestJob.objects.create(
            token=token,
            actor_id=actor.id,
            actor_label=actor.label,
            request_id=current_request_id.get(),
            rows_received=len(rows),
            rows_queued=len(valid),
            rows_rejected=len(errors),
            chunks_total=len(parts),
            errors=errors,
        )
        IngestChunk.objects.bulk_create(
            IngestChunk(job=job, number=number, row_indexes=[i for i, _ in part], rows=[row for _, row in part])
            for number, part in enumerate(parts)
        )
        audit_record(
            actor=actor,
            action="ingest_job.created",
            object_type="ingest_job",
            object_id=job.pk,
            after={"rows_received": len(rows), "rows_queued": len(valid), "chunks": len(parts)},
        )
        transaction.on_commit(lambda: _send_fan_out(job.pk))
    return job


def _check_on_receipt(rows: Sequence[Any]) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """(index, row) of the valid rows, and the errors of the others, by the rules of POST /decisions."""
    valid: list[tuple[int, Any]] = []
    errors: list[dict[str, Any]] = []
    first_seen: dict[tuple[str, ...], tuple[int, float]] = {}
    for index, raw in enumerate(rows):
        try:
            if isinstance(raw, UnreadableRow):
                raise RowError("", raw.message)
            row = check_decision_row(raw)
            first_index, first_score = first_seen.setdefault(row.key, (index, row.score))
            if first_score != row.score:
                raise RowError("score", f"same decision as row {first_index} with a different score")
        except RowError as error:
            errors.append({"index": index, "field": error.field, "message": error.message})
            continue
        valid.append((index, raw))
    return valid, errors


def ingest_job_fan_out(*, job_id: int) -> int:
    """Send one apply task for each chunk of the job not sent yet; returns how many were sent.

    The chunks are marked sent first, and the tasks go out after that commits: a chunk marked
    but never sent (the process died in between) is picked up by `ingest_chunks_resend_stalled`.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE reviewapp_ingestchunk SET enqueued_at = statement_timestamp()
                WHERE job_id = %s AND status = 'pending' AND enqueued_at IS NULL
                RETURNING id
                """,
                [job_id],
            )
            chunk_ids = sorted(row[0] for row in cursor.fetchall())
        transaction.on_commit(lambda: _send_chunks(chunk_ids))
    return len(chunk_ids)


def ingest_chunks_resend_stalled(*, older_than: timedelta, limit: int = RESEND_BATCH) -> int:
    """Re-send pending chunks whose task was sent more than `older_than` ago (or, for a job that
    old, never). Returns how many. Skips chunks being applied right now (their row is locked)."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE reviewapp_ingestchunk SET enqueued_at = statement_timestamp()
                WHERE id IN (
                    SELECT c.id FROM reviewapp_ingestchunk c JOIN reviewapp_ingestjob j ON j.id = c.job_id
                    WHERE c.status = 'pending'
                      AND coalesce(c.enqueued_at, j.created_at) < statement_timestamp() - make_interval(secs => %s)
                    ORDER BY c.id LIMIT %s
                    FOR UPDATE OF c SKIP LOCKED
                )
                RETURNING id
                """,
                [older_than.total_seconds(), limit],
            )
            chunk_ids = sorted(row[0] for row in cursor.fetchall())
        transaction.on_commit(lambda: _send_chunks(chunk_ids))
    return len(chunk_ids)


def _send_fan_out(job_id: int) -> None:
    from ..tasks import ingest_fan_out  # tasks import this module

    ingest_fan_out.delay(job_id)


def _send_chunks(chunk_ids: list[int]) -> None:
    from ..tasks import ingest_apply_chunk

    for chunk_id in chunk_ids:
        ingest_apply_chunk.delay(chunk_id)


def ingest_chunk_apply(*, chunk_id: int) -> bool:
    """Apply a pending chunk with `decisions_ingest`; True when this call applied it. Idempotent.

    The delivery is counted first, in a statement of its own, so the count survives a worker
    killed mid-chunk; past MAX_ATTEMPTS the chunk fails instead of being tried again. Then one
    durable transaction locks the chunk row (a concurrent delivery of the same chunk waits
    there, then finds it done), ingests the rows, marks the chunk done and adds its counts to
    the job. The job row is locked last, so chunks of one job are applied in parallel and only
    their commits queue on it.
    """
    attempts = _count_attempt(chunk_id)
    if attempts is None:
        return False
    if attempts > MAX_ATTEMPTS:
        ingest_chunk_fail(chunk_id=chunk_id, error=f"{MAX_ATTEMPTS} deliveries started applying it; none finished")
        return False
    with transaction.atomic(durable=True):
        chunk = (
            IngestChunk.objects.select_for_update(of=("self",))
            .select_related("job")
            .filter(pk=chunk_id, status=IngestChunkStatus.PENDING)
            .first()
        )
        if chunk is None:
            return False
        result = _ingest(chunk)
        errors = [{**error, "index": chunk.row_indexes[error["index"]]} for error in result.errors]
        duplicate = len(result.results) - result.created
        IngestChunk.objects.filter(pk=chunk.pk).update(
            status=IngestChunkStatus.DONE,
            rows=None,
            applied_at=Now(),
            created=result.created,
            duplicate=duplicate,
            errors=errors,
        )
        _job_count(chunk.job, created=result.created, duplicate=duplicate, rejected=len(errors), done=1)
    return True


def _count_attempt(chunk_id: int) -> int | None:
    """Count a delivery of a pending chunk; None when the chunk is settled or gone."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE reviewapp_ingestchunk SET attempts = attempts + 1 WHERE id = %s AND status = 'pending' "
            "RETURNING attempts",
            [chunk_id],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def _ingest(chunk: IngestChunk) -> IngestResult:
    job = chunk.job
    # The decisions' audit events carry the id of the request that uploaded them.
    request_id = current_request_id.set(job.request_id)
    try:
        return decisions_ingest(rows=chunk.rows or [], actor=Actor(job.actor_id, job.actor_label))
    finally:
        current_request_id.reset(request_id)


def ingest_chunk_fail(*, chunk_id: int, error: str) -> bool:
    """Give up on a pending chunk: it fails with `error`, its rows kept for `ingest_job_retry`.

    Idempotent (False when the chunk is no longer pending). Locks the chunk row, then the job row.
    """
    with transaction.atomic():
        chunk = (
            IngestChunk.objects.select_for_update(of=("self",))
            .select_related("job")
            .filter(pk=chunk_id, status=IngestChunkStatus.PENDING)
            .first()
        )
        if chunk is None:
            return False
        IngestChunk.objects.filter(pk=chunk.pk).update(status=IngestChunkStatus.FAILED, last_error=error[:2000])
        _job_count(chunk.job, failed=1)
    return True


def _job_count(
    job: IngestJob, *, created: int = 0, duplicate: int = 0, rejected: int = 0, done: int = 0, failed: int = 0
) -> None:
    """Add a settled chunk to the job's counters in one UPDATE; audit the job's end.

    Call inside the transaction that settles the chunk. Locks the job row.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE reviewapp_ingestjob SET
                rows_created = rows_created + %(created)s,
                rows_duplicate = rows_duplicate + %(duplicate)s,
                rows_rejected = rows_rejected + %(rejected)s,
                chunks_done = chunks_done + %(done)s,
                chunks_failed = chunks_failed + %(failed)s,
                status = CASE
                    WHEN chunks_done + chunks_failed + %(done)s + %(failed)s < chunks_total THEN 'running'
                    WHEN chunks_failed + %(failed)s > 0 THEN 'failed'
                    ELSE 'done' END,
                finished_at = CASE
                    WHEN chunks_done + chunks_failed + %(done)s + %(failed)s < chunks_total THEN NULL
                    ELSE statement_timestamp() END
            WHERE id = %(job)s
            RETURNING status, rows_created, rows_duplicate, rows_rejected, chunks_done, chunks_failed
            """,
            {
                "job": job.pk,
                "created": created,
                "duplicate": duplicate,
                "rejected": rejected,
                "done": done,
                "failed": failed,
            },
        )
        status, *counts = cursor.fetchone()
    if status != IngestJobStatus.RUNNING:
        names = ("rows_created", "rows_duplicate", "rows_rejected", "chunks_done", "chunks_failed")
        audit_record(
            actor=SYSTEM,
            action="ingest_job.finished",
            object_type="ingest_job",
            object_id=job.pk,
            after={"status": status, **dict(zip(names, counts, strict=True))},
        )


def ingest_job_retry(*, job_id: int, actor: Actor) -> int:
    """Send the failed chunks of a job again; returns how many. Locks the job row."""
    with transaction.atomic(durable=True):
        job = IngestJob.objects.select_for_update().get(pk=job_id)
        retried = IngestChunk.objects.filter(job=job, status=IngestChunkStatus.FAILED).update(
            status=IngestChunkStatus.PENDING, attempts=0, enqueued_at=None
        )
        if not retried:
            return 0
        IngestJob.objects.filter(pk=job.pk).update(
            chunks_failed=F("chunks_failed") - retried, status=IngestJobStatus.RUNNING, finished_at=None
        )
        audit_record(
            actor=actor,
            action="ingest_job.retried",
            object_type="ingest_job",
            object_id=job.pk,
            before={"status": job.status},
            after={"status": IngestJobStatus.RUNNING, "chunks_retried": retried},
        )
        transaction.on_commit(lambda: _send_fan_out(job.pk))
    return retried


def ingest_job_errors(job: IngestJob, *, start: int = 0, limit: int = ERRORS_PAGE) -> tuple[list[dict], int | None]:
    """The job's row errors (on receipt, when applied, and the rows of failed chunks) from row
    index `start`, by index: at most `limit`, and the index the next page starts at (None when
    there is no more). A failed job therefore always lists the rows it did not apply, and why."""
    errors = [error for error in job.errors if error["index"] >= start]
    for chunk_errors in IngestChunk.objects.filter(job=job).exclude(errors=[]).values_list("errors", flat=True):
        errors.extend(error for error in chunk_errors if error["index"] >= start)
    failed = IngestChunk.objects.filter(job=job, status=IngestChunkStatus.FAILED)
    for indexes, last_error in failed.values_list("row_indexes", "last_error"):
        message = f"not applied yet, kept for a retry by an admin: {last_error or 'its chunk failed'}"
        errors.extend({"index": index, "field": "", "message": message} for index in indexes if index >= start)
    errors.sort(key=lambda error: error["index"])
    page = errors[:limit]
    return page, (page[-1]["index"] + 1 if len(errors) > limit else None)
