"""Bulk ingest jobs: POST /api/v1/ingest-jobs stores rows at once; workers apply them in chunks.

API validation and limits, chunk application (idempotent, exactly once), progress and row
errors, the stalled-chunk sweep, and the whole path through a real Celery worker.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from reviewapp.audit import SYSTEM
from reviewapp.models import (
    AuditEvent,
    ContentItem,
    IngestChunk,
    IngestChunkStatus,
    IngestJob,
    IngestJobStatus,
    ModelDecision,
    ReviewTask,
)
from reviewapp.services import ingest_jobs
from reviewapp.services.ingest_jobs import (
    MAX_ATTEMPTS,
    ingest_chunk_apply,
    ingest_chunk_fail,
    ingest_chunks_resend_stalled,
    ingest_job_create,
    ingest_job_errors,
    ingest_job_retry,
)
from tests.worker import test_database_url as worker_database_url
from tests.worker import wait_for

URL = "/api/v1/ingest-jobs"
NDJSON = "application/x-ndjson"


def row(external_id: str = "c-1", score: float = 0.5, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    values = {
        "source": "backfill",
        "external_id": external_id,
        "text": "you are a clown",
        "policy": "harassment",
        "model_name": "tox-bert",
        "model_version": "v1",
        "score": score,
    }
    values.update(kwargs)
    return values


def ndjson(rows: list) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def apply_all(job: IngestJob) -> None:
    for chunk_id in job.chunks.order_by("number").values_list("pk", flat=True):
        ingest_chunk_apply(chunk_id=chunk_id)


@pytest.fixture
def small_chunks(settings):  # type: ignore[no-untyped-def]
    settings.INGEST_JOB_CHUNK_ROWS = 2


class TestReceipt:
    def test_valid_rows_are_stored_in_chunks_and_invalid_ones_reported_by_index(
        self, ingest_client, small_chunks
    ) -> None:
        rows = [row("a"), row("b", score=2), row("c"), row("d"), row("e", policy="")]

        response = ingest_client.post(URL, {"decisions": rows}, format="json")

        assert response.status_code == 202, response.json()
        body = response.json()
        assert response["Location"] == body["url"] == f"http://testserver{URL}/{body['id']}"
        assert (body["status"], body["rows_received"], body["rows_queued"], body["rows_rejected"]) == (
            "queued",
            5,
            3,
            2,
        )
        assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "score"), (4, "policy")]
        chunks = IngestChunk.objects.filter(job_id=body["id"]).order_by("number")
        assert [(c.row_indexes, [r["external_id"] for r in c.rows]) for c in chunks] == [
            ([0, 2], ["a", "c"]),
            ([3], ["d"]),
        ]
        assert body["chunks_total"] == 2 and not ModelDecision.objects.exists()  # applied by workers, later
        assert AuditEvent.objects.filter(action="ingest_job.created", object_id=str(body["id"])).exists()

    def test_ndjson_body_keeps_the_rows_around_a_malformed_line(self, ingest_client) -> None:
        body = ndjson([row("a")]) + b'{"source": "backfill", "external_id": \n\n' + ndjson([row("b")])

        response = ingest_client.post(URL, body, content_type=NDJSON)

        assert response.status_code == 202, response.json()
        job = response.json()
        assert (job["rows_received"], job["rows_queued"]) == (3, 2)
        assert job["errors"] == [{"index": 1, "field": "", "message": job["errors"][0]["message"]}]
        assert job["errors"][0]["message"].startswith("line 2: malformed JSON")

    def test_an_ndjson_line_with_nan_is_a_row_error(self, ingest_client) -> None:
        body = ndjson([row("a")]) + b'{"source": "backfill", "metadata": {"ratio": NaN}}\n'

        response = ingest_client.post(URL, body, content_type=NDJSON)

        assert response.status_code == 202
        assert response.json()["errors"][0]["message"] == "line 2: malformed JSON: NaN is not a JSON value"

    def test_same_decision_with_two_scores_keeps_the_first(self, ingest_client) -> None:
        response = ingest_client.post(URL, {"decisions": [row("a", 0.5), row("a", 0.7)]}, format="json")

        assert response.json()["errors"] == [
            {"index": 1, "field": "score", "message": "same decision as row 0 with a different score"}
        ]

    def test_no_valid_row_is_400_and_stores_nothing(self, ingest_client) -> None:
        response = ingest_client.post(URL, ndjson([row(score="high"), [1, 2]]), content_type=NDJSON)

        assert response.status_code == 400
        assert response.json()["detail"] == "No row is valid; nothing was stored."
        assert [e["field"] for e in response.json()["errors"]] == ["score", ""]
        assert not IngestJob.objects.exists()

    @pytest.mark.parametrize(
        ("body", "content_type", "message"),
        [
            (b"", "application/json", "Body must be a JSON object with a 'decisions' list"),
            (b'{"decisions": [', "application/json", "Malformed JSON: Expecting value at line 1 column 16."),
            (b'{"decisions": []}', "application/json", "The body holds no decisions."),
            (b"[" * 100_000, "application/json", "Malformed JSON: nested too deeply."),
            (b'{"decisions": [{"metadata": {"x": NaN}}]}', "application/json", "Malformed JSON: NaN is not a JSON"),
            (b"\n\n", NDJSON, "The body holds no decisions."),
        ],
    )
    def test_a_body_that_is_no_batch_is_400(self, ingest_client, body: bytes, content_type: str, message: str) -> None:
        response = ingest_client.post(URL, body, content_type=content_type)

        assert response.status_code == 400
        assert response.json()["detail"].startswith(message)

    def test_other_media_types_are_415(self, ingest_client) -> None:
        response = ingest_client.post(URL, "source,external_id\n", content_type="text/csv")

        assert response.status_code == 415

    def test_too_many_rows_is_413(self, ingest_client, settings) -> None:
        settings.INGEST_JOB_MAX_ROWS = 3

        response = ingest_client.post(URL, ndjson([row(str(n)) for n in range(4)]), content_type=NDJSON)

        assert response.status_code == 413
        assert "4 rows; the limit is 3 (REVIEWAPP_INGEST_JOB_MAX_ROWS)" in response.json()["detail"]
        assert not IngestJob.objects.exists()

    def test_oversized_body_is_413(self, ingest_client, settings) -> None:
        settings.INGEST_JOB_MAX_BODY_BYTES = 2048

        response = ingest_client.post(URL, ndjson([row(str(n)) for n in range(30)]), content_type=NDJSON)

        assert response.status_code == 413
        assert "REVIEWAPP_INGEST_JOB_MAX_BODY_BYTES" in response.json()["detail"]

    def test_the_job_limit_not_the_decisions_limit_applies(self, ingest_client, settings) -> None:
        settings.INGEST_MAX_BODY_BYTES, settings.INGEST_MAX_ROWS = 1024, 1
        rows = [row(str(n)) for n in range(30)]

        response = ingest_client.post(URL, {"decisions": rows}, format="json")

        assert response.status_code == 202 and response.json()["rows_queued"] == 30


class TestAccess:
    def test_a_token_without_the_scope_is_403(self, make_token) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['appeals:write'])}")

        response = client.post(URL, ndjson([row()]), content_type=NDJSON)

        assert response.status_code == 403 and not IngestJob.objects.exists()

    def test_only_the_token_that_created_a_job_reads_it(self, ingest_client, make_token) -> None:
        job = ingest_client.post(URL, ndjson([row()]), content_type=NDJSON).json()
        other = APIClient()
        other.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")

        assert ingest_client.get(job["url"]).status_code == 200
        assert other.get(job["url"]).status_code == 404
        assert ingest_client.get(f"{URL}/{job['id'] + 1}").status_code == 404

    def test_errors_from_must_be_a_row_index(self, ingest_client) -> None:
        job = ingest_client.post(URL, ndjson([row()]), content_type=NDJSON).json()

        for bad in ("-1", "²", "1e3"):
            assert ingest_client.get(job["url"], {"errors_from": bad}).status_code == 400, bad


@pytest.mark.usefixtures("routing_rule")
class TestApply:
    def test_a_chunk_applied_twice_creates_each_decision_once(self, queue) -> None:
        job = ingest_job_create(rows=[row("a", 0.5), row("b", 0.95), row("c", 0.5)], actor=SYSTEM)
        chunk = job.chunks.get()

        assert ingest_chunk_apply(chunk_id=chunk.pk) is True
        assert ingest_chunk_apply(chunk_id=chunk.pk) is False  # a redelivered task

        assert ModelDecision.objects.count() == 3 and ContentItem.objects.count() == 3
        assert ReviewTask.objects.filter(queue=queue).count() == 2  # the review band
        assert AuditEvent.objects.filter(action="decision.ingested").count() == 3
        chunk.refresh_from_db()
        assert (chunk.status, chunk.attempts, chunk.created, chunk.rows) == ("done", 1, 3, None)
        job.refresh_from_db()
        assert (job.status, job.rows_created, job.chunks_done) == (IngestJobStatus.DONE, 3, 1)
        assert job.finished_at is not None
        finished = AuditEvent.objects.get(action="ingest_job.finished")
        assert finished.after["status"] == "done" and finished.after["rows_created"] == 3

    def test_decisions_already_stored_are_duplicates(self, ingest_client) -> None:
        ingest_client.post("/api/v1/decisions", {"decisions": [row("a")]}, format="json")
        job = ingest_job_create(rows=[row("a"), row("b")], actor=SYSTEM)

        apply_all(job)

        job.refresh_from_db()
        assert (job.rows_created, job.rows_duplicate) == (1, 1) and ModelDecision.objects.count() == 2

    def test_errors_on_receipt_and_when_applied_are_reported_by_index_in_the_body(self, small_chunks) -> None:
        rows = [row("a"), row("b", score=-1), row("c"), row("d", policy="unknown"), row("e")]
        job = ingest_job_create(rows=rows, actor=SYSTEM)

        apply_all(job)

        job.refresh_from_db()
        errors, next_from = ingest_job_errors(job)
        assert [(e["index"], e["field"]) for e in errors] == [(1, "score"), (3, "policy")]
        assert "unknown policy 'unknown'" in errors[1]["message"] and next_from is None
        assert (job.rows_created, job.rows_rejected, job.status) == (3, 2, "done")

    def test_progress_moves_chunk_by_chunk(self, ingest_client, small_chunks) -> None:
        body = ingest_client.post(URL, ndjson([row(str(n)) for n in range(5)]), content_type=NDJSON).json()
        job = IngestJob.objects.get(pk=body["id"])
        first, *rest = job.chunks.order_by("number")

        ingest_chunk_apply(chunk_id=first.pk)
        running = ingest_client.get(body["url"]).json()
        for chunk in rest:
            ingest_chunk_apply(chunk_id=chunk.pk)
        done = ingest_client.get(body["url"]).json()

        assert (running["status"], running["chunks_done"], running["rows_created"]) == ("running", 1, 2)
        assert running["finished_at"] is None
        assert (done["status"], done["chunks_done"], done["chunks_total"], done["rows_created"]) == ("done", 3, 3, 5)
        assert done["finished_at"] is not None

    def test_row_errors_come_in_pages(self, ingest_client) -> None:
        rows = [row(str(n), score=None if n % 2 else 0.5) for n in range(7)]
        body = ingest_client.post(URL, {"decisions": rows}, format="json").json()
        job = IngestJob.objects.get(pk=body["id"])

        first, next_from = ingest_job_errors(job, limit=2)
        second, last = ingest_job_errors(job, start=next_from, limit=2)

        assert [e["index"] for e in first] == [1, 3] and next_from == 4
        assert [e["index"] for e in second] == [5] and last is None
        assert [e["index"] for e in ingest_client.get(body["url"], {"errors_from": 4}).json()["errors"]] == [5]

    @pytest.mark.slow
    def test_two_deliveries_at_once_apply_the_chunk_once(self, transactional_db, routing_rule, monkeypatch) -> None:
        # The two deliveries are this test's threads: the job's own message must not reach a
        # worker of the session (its delivery would be a third contender).
        monkeypatch.setattr(ingest_jobs, "_send_fan_out", lambda job_id: None)
        job = ingest_job_create(rows=[row(str(n)) for n in range(20)], actor=SYSTEM)
        chunk = job.chunks.get()
        outcomes: list[bool] = []

        failures: list[BaseException] = []

        def deliver() -> None:
            try:
                outcomes.append(ingest_chunk_apply(chunk_id=chunk.pk))
            except BaseException as error:  # reported by the assertions below, not lost in the thread
                failures.append(error)
            finally:
                connection.close()

        # Both deliveries start while the chunk row is locked, so they contend for it.
        with psycopg.connect(worker_database_url()) as locker:
            locker.execute("SELECT 1 FROM reviewapp_ingestchunk WHERE id = %s FOR UPDATE", [chunk.pk])
            threads = [threading.Thread(target=deliver) for _ in range(2)]
            for thread in threads:
                thread.start()
            try:
                wait_for(lambda: _waiting_on_locks() == 2 or failures, timeout=60)
            finally:
                locker.rollback()  # never leave the threads blocked behind a failed wait
                for thread in threads:
                    thread.join(timeout=60)

        assert not failures, failures
        assert sorted(outcomes) == [False, True]
        assert ModelDecision.objects.count() == 20
        chunk.refresh_from_db()
        assert chunk.attempts == 2 and IngestJob.objects.get().rows_created == 20  # both deliveries counted


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND query ILIKE '%%reviewapp_ingestchunk%%' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.usefixtures("routing_rule")
class TestStalledAndFailed:
    def test_chunks_sent_long_ago_and_still_pending_are_sent_again(
        self, small_chunks, django_capture_on_commit_callbacks
    ) -> None:
        stalled = ingest_job_create(rows=[row("a"), row("b"), row("c")], actor=SYSTEM)
        recent = ingest_job_create(rows=[row("d")], actor=SYSTEM)
        long_ago = timezone.now() - timedelta(hours=1)
        IngestJob.objects.filter(pk=stalled.pk).update(created_at=long_ago)
        first, second = stalled.chunks.order_by("number")
        IngestChunk.objects.filter(pk=first.pk).update(enqueued_at=long_ago)
        ingest_chunk_apply(chunk_id=second.pk)  # done: nothing to send
        IngestChunk.objects.filter(job=recent).update(enqueued_at=timezone.now())

        with django_capture_on_commit_callbacks() as sends:
            resent = ingest_chunks_resend_stalled(older_than=timedelta(minutes=15))

        assert resent == 1 and len(sends) == 1
        first.refresh_from_db()
        assert first.enqueued_at > long_ago
        assert ingest_chunks_resend_stalled(older_than=timedelta(minutes=15)) == 0  # just sent

    def test_a_chunk_whose_deliveries_keep_dying_fails_and_keeps_its_rows_for_a_retry(self) -> None:
        job = ingest_job_create(rows=[row("a"), row("b")], actor=SYSTEM)
        chunk = job.chunks.get()
        IngestChunk.objects.filter(pk=chunk.pk).update(attempts=MAX_ATTEMPTS)  # five deliveries died

        assert ingest_chunk_apply(chunk_id=chunk.pk) is False

        chunk.refresh_from_db()
        job.refresh_from_db()
        assert chunk.status == IngestChunkStatus.FAILED and len(chunk.rows) == 2
        assert "none finished" in chunk.last_error and not ModelDecision.objects.exists()
        assert (job.status, job.chunks_failed) == (IngestJobStatus.FAILED, 1)

        assert ingest_job_retry(job_id=job.pk, actor=SYSTEM) == 1
        assert ingest_chunk_apply(chunk_id=chunk.pk) is True
        job.refresh_from_db()
        assert (job.status, job.chunks_failed, job.chunks_done, job.rows_created) == ("done", 0, 1, 2)
        assert AuditEvent.objects.filter(action="ingest_job.retried").count() == 1


def test_admin_lists_jobs_and_sends_failed_chunks_again(admin_client) -> None:
    job = ingest_job_create(rows=[row("a")], actor=SYSTEM)
    chunk = job.chunks.get()
    ingest_chunk_fail(chunk_id=chunk.pk, error="OperationalError: server closed the connection")

    listing = admin_client.get("/admin/reviewapp/ingestjob/")
    detail = admin_client.get(f"/admin/reviewapp/ingestjob/{job.pk}/change/")
    retried = admin_client.post(
        "/admin/reviewapp/ingestjob/", {"action": "retry_failed_chunks", "_selected_action": [job.pk]}
    )

    assert listing.status_code == 200 and detail.status_code == 200
    assert b"server closed the connection" in detail.content
    assert retried.status_code == 302 and IngestChunk.objects.get(pk=chunk.pk).status == "pending"
    assert IngestJob.objects.get(pk=job.pk).status == "running"


@pytest.mark.worker
def test_a_job_runs_through_the_worker_and_a_resent_job_creates_nothing(
    transactional_db, celery_worker_process, routing_rule, make_token, settings
) -> None:
    settings.INGEST_JOB_CHUNK_ROWS = 400
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
    rows = [row(f"bf-{n}", score=(n % 10) / 10) for n in range(1000)] + [row("x", policy="unknown")]

    first = client.post(URL, ndjson(rows), content_type=NDJSON).json()
    done = wait_for(lambda: _finished(client, first["url"]), timeout=90, interval=0.3)

    assert (done["status"], done["chunks_done"], done["chunks_total"]) == ("done", 3, 3)
    assert (done["rows_created"], done["rows_duplicate"], done["rows_rejected"]) == (1000, 0, 1)
    assert done["errors"][0]["index"] == 1000 and "unknown policy" in done["errors"][0]["message"]
    assert ModelDecision.objects.count() == 1000 == ModelDecision.objects.values("item_id").distinct().count()
    decided = AuditEvent.objects.filter(action="decision.ingested")
    assert decided.count() == 1000 and decided.exclude(actor_label__startswith="token:").count() == 0

    again = client.post(URL, ndjson(rows), content_type=NDJSON).json()
    resent = wait_for(lambda: _finished(client, again["url"]), timeout=90, interval=0.3)

    assert (resent["rows_created"], resent["rows_duplicate"]) == (0, 1000)
    assert ModelDecision.objects.count() == 1000


def _finished(client: APIClient, url: str) -> dict | None:
    body = client.get(url).json()
    return body if body["status"] in ("done", "failed") else None


POISONED = [
    row("far-west", decided_at="2026-11-26T10:00:00-23:59"),  # kept, as the same instant in UTC
    row("huge", metadata={"n": "BIG"}),  # 1e400: infinity, which jsonb refuses
    row("far-east", decided_at="2026-11-26T10:00:00+16:00"),
    row("bad-url", media_urls=["http://[bad/x"]),
    row("nul", metadata={"note": "a\x00b"}),
]


def poisoned_body() -> bytes:
    body = ndjson([row(f"ok-{n}") for n in range(5)] + POISONED)
    assert body.count(b'"BIG"') == 1
    return body.replace(b'"BIG"', b"1e400")


def test_poisoned_rows_are_reported_at_receipt_and_the_rest_stored(ingest_client, routing_rule) -> None:
    response = ingest_client.post(URL, poisoned_body(), content_type=NDJSON)

    assert response.status_code == 202, response.content
    body = response.json()
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(6, "metadata"), (8, "media_urls"), (9, "metadata")]
    assert (body["rows_received"], body["rows_queued"], body["rows_rejected"]) == (10, 7, 3)


def test_a_failed_job_lists_every_row_it_did_not_apply(ingest_client, routing_rule, small_chunks) -> None:
    body = ingest_client.post(URL, ndjson([row("a"), row("b", score=7), row("c"), row("d")]), content_type=NDJSON)
    job = IngestJob.objects.get(pk=body.json()["id"])
    first, second = job.chunks.order_by("number")
    ingest_chunk_apply(chunk_id=first.pk)
    ingest_chunk_fail(chunk_id=second.pk, error="OperationalError: server closed the connection")

    failed = ingest_client.get(body.json()["url"]).json()

    assert (failed["status"], failed["rows_created"], failed["rows_rejected"]) == ("failed", 2, 1)
    assert [(e["index"], e["field"]) for e in failed["errors"]] == [(1, "score"), (3, "")]
    assert "server closed the connection" in failed["errors"][1]["message"]
    assert "retry" in failed["errors"][1]["message"]


@pytest.mark.worker
def test_a_job_with_poisoned_rows_stores_the_valid_ones_through_the_worker(
    transactional_db, celery_worker_process, routing_rule, make_token
) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")

    job = client.post(URL, poisoned_body(), content_type=NDJSON).json()
    done = wait_for(lambda: _finished(client, job["url"]), timeout=90, interval=0.3)

    assert (done["status"], done["rows_created"], done["rows_rejected"]) == ("done", 7, 3), done
    assert [e["index"] for e in done["errors"]] == [6, 8, 9]
    stored = set(ModelDecision.objects.values_list("item__external_id", flat=True))
    assert stored == {"ok-0", "ok-1", "ok-2", "ok-3", "ok-4", "far-west", "far-east"}
    far_west = ModelDecision.objects.get(item__external_id="far-west").decided_at
    assert far_west.isoformat() == "2026-11-27T09:59:00+00:00"
