"""A Celery worker SIGKILLed mid-task, for each task family: the task is delivered again
(acks_late, Redis visibility timeout), completes, and leaves no duplicate rows and no
half-written file.

Each test runs its task on a worker of its own, on a queue of its own (a session worker may be
reading the usual queues), and stops it at a known point without touching the code under
test: it holds a PostgreSQL lock that the task needs at a chosen step, waits until the worker's
database session is seen waiting for that lock (pg_stat_activity), SIGKILLs the worker's
process group and releases the lock. Once PostgreSQL has noticed the dead client and rolled
its transaction back, the test checks what the killed attempt left behind. A second worker,
with a 2-second visibility timeout, takes the unacknowledged message back at start-up and
finishes the task.

Families: bulk ingest chunks, pool scoring chunks, Label Studio push and pull, export files.
Training is covered the same way by tests/activelearning/test_tasks_round.py
(test_sigkill_mid_training_registers_nothing_and_redelivery_completes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from label_studio_sdk import LabelStudio
from rest_framework.test import APIClient

from activelearning.models import PoolScore, ScoreChunk, ScoringRun, ScoringStatus
from activelearning.services.rounds import check_round_params
from activelearning.services.training import training_run_execute
from activelearning.tasks import score_chunk
from labeling.exports.jobs import export_path, export_stream
from labeling.exports.models import ExportJob, JobStatus
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.exports.tasks import export_file
from labeling.labelstudio.labelconfig import choice_results
from labeling.labelstudio.models import ImportOutcome, Project, PulledAnnotation, PushedTask, SyncKind, SyncRun
from labeling.labelstudio.services import project_sync, tasks_push
from labeling.labelstudio.tasks import pull_connection, push_tasks
from labeling.models import Annotation, GoldLabel
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ContentItem, IngestChunk, IngestJob, ModelDecision, ReviewTask
from reviewapp.services.ingest_jobs import ingest_chunks_resend_stalled, ingest_job_create
from reviewapp.tasks import ingest_apply_chunk
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files  # noqa: F401
from tests.factories import PolicyFactory
from tests.labelstudio import conftest as labelstudio_fixtures
from tests.labelstudio.server import LabelStudioServer, running_label_studio
from tests.worker import celery_worker, unacked_deliveries_older_than, wait_for
from tests.worker import test_database_url as worker_database_url

pytestmark = pytest.mark.worker

QUEUE = "faults-worker-kill"
VISIBILITY_TIMEOUT = 2


@pytest.fixture(autouse=True)
def _own_queue(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("tests.worker.QUEUES", QUEUE)


# --------------------------------------------------------------------------- kill and redeliver


@contextlib.contextmanager
def locked(sql: str, params: tuple = ()) -> Iterator[None]:
    """Hold the locks `sql` takes, in a transaction of a connection of its own, until the block exits."""
    with psycopg.connect(worker_database_url()) as holder:
        holder.execute(sql, params)
        try:
            yield
        finally:
            holder.rollback()


def writes(table: str) -> str:
    return rf'(INSERT\s+INTO|UPDATE|COPY)\s+"?{table}"?\s'


def _waiting(statement: str) -> int | None:
    """The backend pid of a session waiting for a lock in a statement that starts like `statement` (a regex)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ~* %s
            """,
            [rf"^\s*{statement}"],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def kill_when_waiting(worker: subprocess.Popen, statement: str, timeout: float = 90) -> int:
    """SIGKILL the worker's process group once its task waits for a lock in `statement`; the backend pid."""
    backend = wait_for(lambda: _waiting(statement), timeout=timeout, interval=0.05)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    return backend


def wait_until_rolled_back(backend: int) -> None:
    """Call after the lock is released: the dead worker's session ends and its transaction is undone."""

    def gone() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
            return cursor.fetchone()[0] == 0

    wait_for(gone, timeout=30)


@pytest.fixture
def redeliver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Callable[[], bool]], None]:
    """redeliver(message, finished): start a new worker, which takes back the message the killed
    one never acknowledged, and wait until `finished()`."""

    def run(message: str, finished: Callable[[], bool]) -> None:
        monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", str(VISIBILITY_TIMEOUT))
        wait_for(lambda: unacked_deliveries_older_than(VISIBILITY_TIMEOUT), timeout=30)
        log = tmp_path / "second.log"
        with celery_worker(log):
            wait_for(finished, timeout=120)
        assert message in _received(log), "the killed worker's message was not delivered again"

    return run


def _received(log: Path) -> list[str]:
    """Ids of the task messages a worker received."""
    lines = log.read_text(errors="replace").splitlines()
    return [line.split("[")[-1].split("]")[0] for line in lines if line.endswith("] received")]


# --------------------------------------------------------------------------- bulk ingest


def test_ingest_chunk_killed_mid_transaction_is_applied_once_on_redelivery(
    transactional_db, routing_rule, queue, tmp_path, monkeypatch, redeliver
) -> None:
    rows = _decisions("bf", 300)
    with monkeypatch.context() as m:  # not onto the ingest queue: only this test's worker may take the chunk
        m.setattr("reviewapp.services.ingest_jobs._send_fan_out", lambda job_id: None)
        job = ingest_job_create(rows=rows, actor=SYSTEM)
    chunk = job.chunks.get()

    # The chunk's transaction writes items, decisions, tasks and audit events, marks the chunk
    # done, then waits for the job row, which the test holds: the worker dies there.
    with (
        celery_worker(tmp_path / "first.log") as first,
        locked("SELECT 1 FROM reviewapp_ingestjob WHERE id = %s FOR UPDATE", (job.pk,)),
    ):
        message = ingest_apply_chunk.apply_async((chunk.pk,), queue=QUEUE).id
        backend = kill_when_waiting(first, writes("reviewapp_ingestjob"))
    wait_until_rolled_back(backend)

    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempts, len(chunk.rows)) == ("pending", 1, 300)
    assert not ContentItem.objects.exists() and not ModelDecision.objects.exists()
    assert not ReviewTask.objects.exists() and not AuditEvent.objects.filter(action="decision.ingested").exists()

    redeliver(message, lambda: IngestJob.objects.get(pk=job.pk).status == "done")

    chunk.refresh_from_db()
    job.refresh_from_db()
    assert (chunk.status, chunk.attempts, chunk.created) == ("done", 2, 300)
    assert (job.rows_created, job.rows_duplicate, job.chunks_done) == (300, 0, 1)
    assert ModelDecision.objects.count() == 300 == ContentItem.objects.count()
    assert AuditEvent.objects.filter(action="decision.ingested").count() == 300
    review_band = ModelDecision.objects.filter(routing_outcome="review").count()
    assert ReviewTask.objects.filter(queue=queue).count() == review_band > 0


def test_ingest_chunk_whose_pool_process_died_alone_is_resent_by_the_sweep(
    transactional_db, routing_rule, tmp_path, monkeypatch
) -> None:
    """Killing only the pool process makes Celery acknowledge the message (WorkerLostError), so
    nothing is redelivered: the chunk stays pending, and the stalled-chunk sweep sends it again."""
    rows = _decisions("pp", 50)
    with monkeypatch.context() as m:
        m.setattr("reviewapp.services.ingest_jobs._send_fan_out", lambda job_id: None)
        job = ingest_job_create(rows=rows, actor=SYSTEM)
    chunk = job.chunks.get()
    IngestChunk.objects.filter(pk=chunk.pk).update(enqueued_at="2000-01-01T00:00:00Z")  # sent long ago

    monkeypatch.setattr("tests.worker.QUEUES", f"{QUEUE},ingest")  # the sweep sends to the ingest queue
    with celery_worker(tmp_path / "worker.log") as worker:
        with locked("SELECT 1 FROM reviewapp_ingestjob WHERE id = %s FOR UPDATE", (job.pk,)):
            message = ingest_apply_chunk.apply_async((chunk.pk,), queue=QUEUE).id
            backend = wait_for(lambda: _waiting(writes("reviewapp_ingestjob")), timeout=90, interval=0.05)
            os.kill(_pool_process(worker.pid), signal.SIGKILL)
        wait_until_rolled_back(backend)
        wait_for(lambda: "WorkerLostError" in (tmp_path / "worker.log").read_text(), timeout=30)
        time.sleep(1)  # a requeued message would be taken at once by the replacement pool process
        assert _received(tmp_path / "worker.log") == [message]
        assert IngestChunk.objects.get(pk=chunk.pk).status == "pending" and not ModelDecision.objects.exists()

        assert ingest_chunks_resend_stalled(older_than=timedelta(minutes=15)) == 1
        wait_for(lambda: IngestJob.objects.get(pk=job.pk).status == "done", timeout=60)

    assert ModelDecision.objects.count() == 50 and IngestChunk.objects.get(pk=chunk.pk).attempts == 2


def _decisions(prefix: str, n: int) -> list[dict]:
    return [
        {
            "source": "backfill",
            "external_id": f"{prefix}-{i}",
            "text": f"comment {i}",
            "policy": "harassment",
            "model_name": "tox-bert",
            "model_version": "v1",
            "score": (i % 10) / 10,
        }
        for i in range(n)
    ]


def _pool_process(worker_pid: int) -> int:
    children = Path(f"/proc/{worker_pid}/task/{worker_pid}/children").read_text().split()
    assert len(children) == 1, children  # --concurrency 1
    return int(children[0])


# --------------------------------------------------------------------------- pool scoring


@pytest.mark.usefixtures("model_files")
def test_scoring_chunk_killed_before_its_marker_is_scored_once_on_redelivery(
    transactional_db, tmp_path, redeliver
) -> None:
    policy, _ = al_policy()
    _, pool = load_items(policy, "convabuse", items=360, gold=280)
    run = _training_run(policy)
    version = training_run_execute(run_id=run.pk)
    first_id = ContentItem.objects.order_by("pk").values_list("pk", flat=True).first()
    scoring = ScoringRun.objects.create(
        policy=policy, model_version=version, first_id=first_id, chunk_size=1000, n_chunks=1
    )

    # The chunk writes its pool scores, then waits to write its marker: the worker dies there.
    with (
        celery_worker(tmp_path / "first.log") as first,
        locked("LOCK TABLE activelearning_scorechunk IN EXCLUSIVE MODE"),
    ):
        message = score_chunk.apply_async((scoring.pk, 0), queue=QUEUE).id
        backend = kill_when_waiting(first, writes("activelearning_scorechunk"))
    wait_until_rolled_back(backend)

    assert not PoolScore.objects.exists() and not ScoreChunk.objects.exists()

    redeliver(message, lambda: ScoringRun.objects.get(pk=scoring.pk).status == ScoringStatus.DONE)

    scores = PoolScore.objects.filter(model_version=version)
    assert scores.count() == len(pool) and set(scores.values_list("item_id", flat=True)) == set(pool)
    assert ScoreChunk.objects.get(scoring_run=scoring).n_scored == len(pool)
    assert ScoringRun.objects.get(pk=scoring.pk).items_scored == len(pool)


def _training_run(policy):  # type: ignore[no-untyped-def]
    """A round row to train in this process (created directly: starting one would enqueue its training)."""
    from activelearning.models import TrainingRun

    params = check_round_params(policy=policy, raw={**FAST_ROUND, "pipeline": "train"})
    return TrainingRun.objects.create(policy=policy, params=params, requested_by_label="test")


# --------------------------------------------------------------------------- Label Studio sync


# The Label Studio tests' fixtures, served by this module's server.
ls_policy = labelstudio_fixtures.ls_policy
ls_queue = labelstudio_fixtures.ls_queue
make_connection = labelstudio_fixtures.make_connection
make_review_task = labelstudio_fixtures.make_review_task


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory) -> Iterator[LabelStudioServer]:  # type: ignore[no-untyped-def]
    """A Label Studio server for this module only (tests/labelstudio starts its own)."""
    with running_label_studio(tmp_path_factory.mktemp("label-studio")) as server:
        yield server


@pytest.fixture
def ls_client(label_studio) -> LabelStudio:  # type: ignore[no-untyped-def]
    return LabelStudio(base_url=label_studio.url, api_key=label_studio.token)


def _ls_task_ids(ls_client: LabelStudio, project: Project) -> list[int]:
    return sorted(task.id for task in ls_client.tasks.list(project=project.ls_project_id, fields="task_only"))


def test_label_studio_push_killed_after_sending_is_adopted_not_sent_twice(
    transactional_db, make_connection, make_review_task, ls_client, tmp_path, redeliver
) -> None:
    for n in range(5):
        make_review_task(f"comment {n}")
    connection_ = make_connection()
    project_sync(connection_id=connection_.pk, triggered_by="test")  # the project exists before the push
    project = Project.objects.get()

    # Label Studio creates the tasks; the bookkeeping that follows waits for the audit log.
    with (
        celery_worker(tmp_path / "first.log") as first,
        locked("LOCK TABLE reviewapp_auditevent IN EXCLUSIVE MODE"),
    ):
        message = push_tasks.apply_async((connection_.pk, None, "test"), queue=QUEUE).id
        backend = kill_when_waiting(first, writes("reviewapp_auditevent"))
    wait_until_rolled_back(backend)

    sent = _ls_task_ids(ls_client, project)
    assert len(sent) == 5
    assert list(PushedTask.objects.values_list("ls_task_id", flat=True)) == [None] * 5  # in flight

    redeliver(message, SyncRun.objects.filter(kind=SyncKind.PUSH, ok=True).exists)

    assert _ls_task_ids(ls_client, project) == sent  # nothing sent twice
    assert sorted(PushedTask.objects.values_list("ls_task_id", flat=True)) == sent
    assert PushedTask.objects.values("task_id").distinct().count() == 5


def test_label_studio_pull_killed_mid_import_records_each_answer_once(
    transactional_db, make_connection, make_review_task, ls_client, tmp_path, redeliver
) -> None:
    for n in range(3):
        make_review_task(f"comment {n}")
    connection_ = make_connection()
    tasks_push(connection_id=connection_.pk, triggered_by="test")
    for pushed in PushedTask.objects.all():
        ls_client.annotations.create(id=pushed.ls_task_id, result=choice_results(["violating"]))

    # The first answer is submitted, then its import record waits: the worker dies there.
    with (
        celery_worker(tmp_path / "first.log") as first,
        locked("LOCK TABLE labelstudio_pulledannotation IN EXCLUSIVE MODE"),
    ):
        message = pull_connection.apply_async((connection_.pk, "test"), queue=QUEUE).id
        backend = kill_when_waiting(first, writes("labelstudio_pulledannotation"))
    wait_until_rolled_back(backend)

    assert not Annotation.objects.exists() and not PulledAnnotation.objects.exists()

    redeliver(message, SyncRun.objects.filter(kind=SyncKind.PULL, ok=True).exists)

    pulled = PulledAnnotation.objects.all()
    assert [row.outcome for row in pulled] == [ImportOutcome.IMPORTED] * 3
    assert Annotation.objects.count() == 3 == Annotation.objects.values("task_id").distinct().count()
    assert set(pulled.values_list("annotation_id", flat=True)) == set(Annotation.objects.values_list("pk", flat=True))


# --------------------------------------------------------------------------- export files


def test_export_killed_mid_file_leaves_no_partial_file_in_view_and_redelivery_writes_it_whole(
    transactional_db, make_token, tmp_path, monkeypatch, settings, redeliver
) -> None:
    export_dir = tmp_path / "exports"
    settings.EXPORT_DIR = export_dir
    monkeypatch.setenv("REVIEWAPP_EXPORT_DIR", str(export_dir))
    monkeypatch.setenv("REVIEWAPP_EXPORT_CHUNK_ROWS", "100")  # the file grows chunk by chunk
    snapshot = _snapshot(rows=3000)
    job = ExportJob.objects.create(
        snapshot=snapshot, format="jsonl", rows_total=snapshot.row_count, requested_by_label="test"
    )
    final = export_path(job)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['export:read'])}")
    download = f"/api/v1/exports/{job.pk}/download"

    # Once the first rows are on disk, the test takes the snapshot rows table: the export's next
    # read waits for it, with part of the file written. The worker dies there.
    with celery_worker(tmp_path / "first.log") as first:
        message = export_file.apply_async((job.pk,), queue=QUEUE).id
        partial = wait_for(lambda: _partly_written(final), timeout=60, interval=0.005)
        with locked("LOCK TABLE exports_datasetsnapshotrow IN ACCESS EXCLUSIVE MODE"):
            backend = kill_when_waiting(first, r"SELECT r\.position", timeout=15)
    wait_until_rolled_back(backend)

    assert partial.stat().st_size > 0 and not final.exists()
    assert ExportJob.objects.get(pk=job.pk).status == JobStatus.RUNNING
    assert api.get(download).status_code == 409  # never served half a file

    redeliver(message, lambda: ExportJob.objects.get(pk=job.pk).status == JobStatus.DONE)

    job.refresh_from_db()
    whole = b"".join(export_stream(snapshot.pk, "jsonl"))
    assert whole.count(b"\n") == snapshot.row_count == 3000 and partial.stat().st_size < len(whole)
    assert final.read_bytes() == whole and hashlib.sha256(whole).hexdigest() == job.sha256 and job.attempts == 2
    assert b"".join(api.get(download).streaming_content) == whole
    assert [p.name for p in final.parent.iterdir() if not p.name.startswith(".")] == [final.name]


def _partly_written(final: Path) -> Path | None:
    """The export's temporary file once it holds some bytes (jobs write `.<name>.<random>.tmp`)."""
    for path in final.parent.glob(f".{final.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):  # renamed into place meanwhile
            if path.stat().st_size > 0:
                return path
    return None


def _snapshot(*, rows: int):  # type: ignore[no-untyped-def]
    policy = PolicyFactory(key="hate")
    items = ContentItem.objects.bulk_create(
        ContentItem(source="export", external_id=f"x-{n}", text=f"comment number {n} " * 8) for n in range(rows)
    )
    version = policy.current_version()
    GoldLabel.objects.bulk_create(
        GoldLabel(
            item=item,
            policy=policy,
            policy_version=version,
            source="adjudication",
            route="backfill",
            labels=["violating" if n % 3 else "not_violating"],
        )
        for n, item in enumerate(items)
    )
    # The export is under test, not the split: the item rule spares grouping 3,000 templated texts.
    dataset = dataset_create(
        slug="killed-export", name="Killed export", filters=SnapshotFilter(), actor=SYSTEM, group_by=""
    )
    return snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
