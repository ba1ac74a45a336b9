"""Claim+submit throughput through the service layer, against a raw SKIP LOCKED loop on the same table.

    python bench/claims.py [--tasks 1000000] [--seconds 20] [--k 8 32]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_bench_claims`, dropped and re-created), so it never touches real data; the Celery tasks
that submits enqueue go to a queue of their own (`bench_claims`) and the metrics counters they
write to cache keys of their own (`reviewapp-bench-claims:*`), both deleted at the end.

Setup: one policy, --tasks content items and one open task each, written with set-based SQL,
split between two queues of the same table by row parity (so both halves are interleaved in the
same heap pages and index, with the same priority and due-time distribution): the `service`
queue and the `raw` queue, each with required_annotations=1. One reviewer user per worker.

For each K, two phases of --seconds each, run one after the other on the same table, each by K
processes (spawn context) that start together once all are connected, in the same timing loop:
- service: each process runs django.setup() (DEBUG off, as in production) and loops
  `task_claim_next` then `annotation_submit(labels=["violating"])` on the service queue, as the
  workspace does, after one untimed warm-up cycle; the timed claim is the whole
  `task_claim_next` call.
- raw (the reference): plain psycopg connections loop a one-statement
  `UPDATE … FROM (SELECT … ORDER BY priority DESC, due_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)`
  claim in its own transaction, then an autocommit UPDATE that completes the task, on the raw
  queue; the timed claim is that statement plus its COMMIT. psycopg prepares statements it runs
  often; on the service path only the claim statement is prepared (DATABASE_PREPARED_STATEMENTS),
  Django's ORM queries never are.
Before each phase the table is vacuumed, so neither inherits the previous phase's dead rows (the
bench database has no autovacuum to count on). A cycle is one claim plus its submit/complete;
rates are cycles per second of the phase's wall time.

Each phase's header line also says where the time went: client and PostgreSQL-backend CPU per
cycle (from /proc, when the server is on this machine), the share of the machine's CPU that other
processes used meanwhile (a busy machine makes the rates meaningless), and the commonest wait
events of the workers' backends, sampled every 0.2 s (`Lock:*` means they queue behind each other).

Double claims: task ids handed out more than once within a phase, from the ids every worker
records; the database is also checked for tasks with more than one annotation.
One line per K: `k=… claims_per_s=… raw_sql_claims_per_s=… ratio=… p95_claim_ms=…
raw_p95_claim_ms=… double_claims=…` (ratio = service / raw; double_claims sums both paths);
the last K's line is the last line.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import secrets
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.queues import Queue as MpQueue
    from multiprocessing.synchronize import Barrier

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVICE_QUEUE = "bench-service"
RAW_QUEUE = "bench-raw"
CELERY_QUEUE = "bench_claims"
CACHE_PREFIX = "reviewapp-bench-claims"

RAW_CLAIM_SQL = """
UPDATE reviewapp_reviewtask t
   SET leased_by_id = %s, lease_expires_at = statement_timestamp() + interval '10 minutes',
       claimed_at = statement_timestamp()
  FROM (SELECT id FROM reviewapp_reviewtask
         WHERE queue_id = %s AND status = 'open'
           AND (lease_expires_at IS NULL OR lease_expires_at < statement_timestamp())
         ORDER BY priority DESC, due_at, id
         LIMIT 1
         FOR UPDATE SKIP LOCKED) c
 WHERE t.id = c.id
RETURNING t.id
"""

RAW_COMPLETE_SQL = """
UPDATE reviewapp_reviewtask
   SET status = 'completed', completed_at = statement_timestamp(), leased_by_id = NULL, lease_expires_at = NULL
 WHERE id = %s
"""


@dataclass
class WorkerResult:
    claimed_ids: list[int]
    claim_seconds: list[float]
    elapsed: float
    client_cpu: float = 0.0  # seconds of this worker process
    db_cpu: float | None = None  # seconds of its PostgreSQL backend; None if not on this machine
    resumed: int = 0
    submit_errors: int = 0
    drained: bool = False
    error: str = ""


@dataclass
class PhaseResult:
    cycles: int
    wall: float
    p50_ms: float
    p95_ms: float
    double_claims: int
    resumed: int
    submit_errors: int
    drained: bool
    client_cpu: float
    db_cpu: float | None
    other_cpu: float | None  # busy CPU seconds of everything else on the machine, if it can be read
    waits: Counter[str]  # sampled wait events of the workers' backends inside a statement or transaction

    @property
    def rate(self) -> float:
        return self.cycles / self.wall


def bench_database_url(suffix: str = "_bench_claims") -> str:
    """DATABASE_URL with `suffix` added to the database name: the bench's own database."""
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path=url.path.rstrip("/") + suffix))


def recreate_database(url: str, *, template: str | None = None) -> None:
    """Drop and create the database at `url`, empty or as a copy of the one at `template`."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    copy_of = "" if template is None else f' TEMPLATE "{urlsplit(template).path.lstrip("/")}"'
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"{copy_of}')


def configure_django(*, cache_prefix: str = CACHE_PREFIX, celery_queue: str = CELERY_QUEUE) -> None:
    """Point Django at the bench database (already in DATABASE_URL) and set it up; once per process."""
    # Production settings: DEBUG would keep every query in memory and log it, which is not what
    # reviewers' requests pay. The secret is never used for anything here.
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    from config.celery import app

    # Metrics counters live in the cache (Redis): the bench's go under a key prefix of their own,
    # deleted at the end, so they never add to the counters of a real deployment.
    settings.CACHES["default"]["KEY_PREFIX"] = cache_prefix

    # Submits enqueue Celery tasks on commit. They go to a queue of their own that no worker
    # consumes: task ids from the bench database must never reach a worker of a real one.
    app.conf.task_routes = {"*": {"queue": celery_queue}}


def drop_celery_queue(name: str = CELERY_QUEUE) -> int:
    """Delete the bench's Celery queue; returns how many messages the submits had enqueued."""
    from kombu import Exchange
    from kombu import Queue as KombuQueue

    from config.celery import app

    # Declared the way Celery declares a queue it creates on first use, so delete() unbinds it too.
    declared = KombuQueue(name, Exchange(name), routing_key=name)
    with app.connection_for_write() as conn:
        queue = declared(conn.default_channel)
        queue.declare()
        messages = queue.purge() or 0
        queue.delete()
    return messages


def drop_cache_keys(prefix: str = CACHE_PREFIX) -> int:
    """Delete the bench's cache keys (metrics counters); returns how many there were."""
    import redis
    from django.conf import settings

    location = settings.CACHES["default"]["LOCATION"]
    first_server = re.split("[;,]", location)[0] if isinstance(location, str) else location[0]
    client = redis.Redis.from_url(first_server)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def setup_fixtures(n_tasks: int, n_reviewers: int) -> tuple[int, int, list[int]]:
    """Policy, the two queues, reviewers and the open tasks; returns (service queue, raw queue, reviewers)."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from labeling.models import Policy, PolicyVersion
    from reviewapp.models import Queue

    schema = {"labels": [{"value": "violating"}, {"value": "not_violating"}]}
    with transaction.atomic():
        policy = Policy.objects.create(key="harassment", name="Harassment")
        PolicyVersion.objects.create(policy=policy, number=1, guideline="…", label_schema=schema)
        service = Queue.objects.create(slug=SERVICE_QUEUE, name="Service path", required_annotations=1)
        raw = Queue.objects.create(slug=RAW_QUEUE, name="Raw SQL reference", required_annotations=1)
        reviewers = User.objects.bulk_create(User(username=f"reviewer{i}") for i in range(n_reviewers))
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO reviewapp_contentitem
                       (source, external_id, modality, title, text, media_urls, context, metadata, reach)
                SELECT 'bench', 'c-' || g, 'text', '', 'bench comment number ' || g, '[]', '[]',
                       '{"language": "en"}', g %% 5000
                  FROM generate_series(1, %(n)s) g
                """,
                {"n": n_tasks},
            )
            # Priorities and due times are scrambled by id so that claim order is not heap order;
            # parity picks the queue so both queues share pages and index.
            cursor.execute(
                """
                INSERT INTO reviewapp_reviewtask
                       (item_id, policy_id, queue_id, reason, priority, due_at, sampling_propensity, status)
                SELECT i.id, %(policy)s, CASE WHEN i.id %% 2 = 0 THEN %(service)s ELSE %(raw)s END,
                       'low_confidence', ((i.id * 7919) %% 1000) / 1000.0,
                       statement_timestamp() + ((i.id * 104729) %% 1440) * interval '1 minute', 1.0, 'open'
                  FROM reviewapp_contentitem i
                """,
                {"policy": policy.pk, "service": service.pk, "raw": raw.pk},
            )
    vacuum()
    return service.pk, raw.pk, [user.pk for user in reviewers]


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE reviewapp_reviewtask")
        cursor.execute("VACUUM ANALYZE reviewapp_contentitem")
        cursor.execute("VACUUM ANALYZE labeling_annotation")


def service_worker(queue_id: int, reviewer_id: int, seconds: float, barrier: Barrier, results: MpQueue) -> None:
    """One reviewer claiming and answering through the services, as the workspace does."""
    try:
        configure_django()
        from django.contrib.auth.models import User
        from django.db import connection

        from labeling.services.annotations import SubmissionRejected, annotation_submit
        from reviewapp.models import Queue
        from reviewapp.services.claims import task_claim_next

        reviewer = User.objects.get(pk=reviewer_id)
        review_queue = Queue.objects.get(pk=queue_id)

        def claim() -> tuple[int | None, bool]:
            claimed = task_claim_next(reviewer=reviewer, queue=review_queue)
            return (None, False) if claimed is None else (claimed.task.pk, claimed.resumed)

        def submit(task_id: int) -> bool:
            try:
                annotation_submit(task_id=task_id, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
            except SubmissionRejected:
                return False
            return True

        # One untimed cycle first: lazy imports, the broker connection and the like are start-up
        # costs that a long-running web worker has long paid.
        task_id, _ = claim()
        if task_id is not None:
            submit(task_id)
        result = measured_loop(claim, submit, seconds, barrier, CpuMeter(connection.connection.info.backend_pid))
    except Exception as exc:  # reported to the parent, which stops the run
        result = WorkerResult([], [], 0.0, error=f"{type(exc).__name__}: {exc}")
    results.put(result)


def raw_worker(queue_id: int, reviewer_id: int, seconds: float, barrier: Barrier, results: MpQueue) -> None:
    """The reference: one-statement SKIP LOCKED claim in its own transaction, then complete."""
    try:
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as conn:

            def claim() -> tuple[int | None, bool]:
                with conn.transaction():
                    row = conn.execute(RAW_CLAIM_SQL, (reviewer_id, queue_id)).fetchone()
                return (None, False) if row is None else (row[0], False)

            def complete(task_id: int) -> bool:
                conn.execute(RAW_COMPLETE_SQL, (task_id,))
                return True

            result = measured_loop(claim, complete, seconds, barrier, CpuMeter(conn.info.backend_pid))
    except Exception as exc:  # reported to the parent, which stops the run
        result = WorkerResult([], [], 0.0, error=f"{type(exc).__name__}: {exc}")
    results.put(result)


def measured_loop(
    claim: Callable[[], tuple[int | None, bool]],
    finish: Callable[[int], bool],
    seconds: float,
    barrier: Barrier,
    meter: CpuMeter,
) -> WorkerResult:
    """Once every worker is ready, claim and finish tasks for `seconds`; only the claim is timed.

    The same loop drives both paths. `claim` returns (task id or None when nothing is left,
    whether the reviewer already held it); `finish` returns False when the answer was refused.
    """
    barrier.wait()
    meter.start()
    result = WorkerResult([], [], 0.0)
    started = time.perf_counter()
    while time.perf_counter() < started + seconds:
        t0 = time.perf_counter()
        task_id, resumed = claim()
        result.claim_seconds.append(time.perf_counter() - t0)
        if task_id is None:
            result.drained = True
            break
        if resumed:
            result.resumed += 1
        else:
            result.claimed_ids.append(task_id)
        if not finish(task_id):
            result.submit_errors += 1
    result.elapsed = time.perf_counter() - started
    meter.stop(result)
    return result


def run_phase(target: Callable[..., None], k: int, queue_id: int, reviewers: list[int], seconds: float) -> PhaseResult:
    """Start K workers, release them together once all are connected, and combine what they report."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(k + 1)
    results = ctx.Queue()
    processes = [ctx.Process(target=target, args=(queue_id, reviewers[i], seconds, barrier, results)) for i in range(k)]
    for process in processes:
        process.start()
    barrier.wait(timeout=300)
    busy0 = machine_busy_seconds()
    reports, waits = collect_reports(results, k, time.monotonic() + seconds + 300)
    busy1 = machine_busy_seconds()
    for process in processes:
        process.join()
    failed = [r.error for r in reports if r.error]
    if failed:
        raise SystemExit(f"{len(failed)} worker(s) failed; first: {failed[0]}")
    latencies = sorted(s for r in reports for s in r.claim_seconds)
    client_cpu = sum(r.client_cpu for r in reports)
    db_cpus = [r.db_cpu for r in reports if r.db_cpu is not None]
    db_cpu = sum(db_cpus) if len(db_cpus) == len(reports) else None
    other_cpu = None if busy0 is None or busy1 is None or db_cpu is None else busy1 - busy0 - client_cpu - db_cpu
    ids = Counter(i for r in reports for i in r.claimed_ids)
    return PhaseResult(
        cycles=sum(len(r.claimed_ids) + r.resumed for r in reports),
        wall=max(r.elapsed for r in reports),
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        double_claims=sum(count - 1 for count in ids.values() if count > 1),
        resumed=sum(r.resumed for r in reports),
        submit_errors=sum(r.submit_errors for r in reports),
        drained=any(r.drained for r in reports),
        client_cpu=client_cpu,
        db_cpu=db_cpu,
        other_cpu=other_cpu,
        waits=waits,
    )


def collect_reports(results: MpQueue, k: int, give_up_at: float) -> tuple[list[WorkerResult], Counter[str]]:
    """Wait for K reports; meanwhile sample what the workers' backends are doing, every 0.2 s."""
    from django.db import connection

    reports: list[WorkerResult] = []
    waits: Counter[str] = Counter()
    while len(reports) < k:
        try:
            reports.append(results.get(timeout=0.2))
        except Empty:
            if time.monotonic() > give_up_at:
                raise SystemExit(f"only {len(reports)} of {k} workers reported") from None
            with connection.cursor() as cursor:
                cursor.execute(
                    """
                    SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu')
                      FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND backend_type = 'client backend' AND state <> 'idle'
                    """
                )
                waits.update(row[0] for row in cursor.fetchall())
    return reports, waits


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU of a local process, from /proc; None when it is not on this machine."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent not idle since boot; None when /proc/stat is unreadable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU spent by this worker and by its database backend between start() and stop()."""

    def __init__(self, backend_pid: int) -> None:
        # Only a PostgreSQL process on this machine; a remote server's pid means nothing here.
        self.backend_pid = backend_pid if process_name(backend_pid) == "postgres" else None

    def start(self) -> None:
        self.client0 = time.process_time()
        self.db0 = None if self.backend_pid is None else process_cpu_seconds(self.backend_pid)

    def stop(self, result: WorkerResult) -> None:
        result.client_cpu = time.process_time() - self.client0
        db1 = None if self.backend_pid is None else process_cpu_seconds(self.backend_pid)
        result.db_cpu = None if db1 is None or self.db0 is None else db1 - self.db0


def describe(name: str, k: int, n_tasks: int, phase: PhaseResult) -> str:
    """One header line per phase; CPU per cycle says where the time goes, other_cpu_pct how noisy the machine was."""
    cycles = max(phase.cycles, 1)
    db_cpu = "n/a" if phase.db_cpu is None else f"{phase.db_cpu / cycles * 1000:.2f}"
    other = "n/a" if phase.other_cpu is None else f"{100 * phase.other_cpu / (phase.wall * (os.cpu_count() or 1)):.0f}"
    sampled = max(phase.waits.total(), 1)
    top_waits = ",".join(f"{event}:{100 * count / sampled:.0f}%" for event, count in phase.waits.most_common(3))
    return (
        f"{name} k={k} n={n_tasks} seconds={phase.wall:.1f} cycles={phase.cycles} cycles_per_s={phase.rate:.0f} "
        f"p50_claim_ms={phase.p50_ms:.2f} p95_claim_ms={phase.p95_ms:.2f} "
        f"client_cpu_ms_per_cycle={phase.client_cpu / cycles * 1000:.2f} db_cpu_ms_per_cycle={db_cpu} "
        f"other_cpu_pct={other} double_claims={phase.double_claims} resumed={phase.resumed} "
        f"submit_errors={phase.submit_errors} queue_drained={phase.drained} backend_samples={top_waits}"
    )


def database_check() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT task_id FROM labeling_annotation GROUP BY task_id HAVING count(*) > 1) d"
        )
        multiple = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM labeling_annotation")
        annotations = cursor.fetchone()[0]
        cursor.execute(
            "SELECT q.slug, count(*) FROM reviewapp_reviewtask t JOIN reviewapp_queue q ON q.id = t.queue_id "
            "WHERE t.status = 'completed' GROUP BY q.slug ORDER BY q.slug"
        )
        completed = " ".join(f"completed_{slug.removeprefix('bench-')}={count}" for slug, count in cursor.fetchall())
    return f"db_check tasks_with_multiple_annotations={multiple} annotations={annotations} {completed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1_000_000, help="open tasks in total, half per queue")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each phase")
    parser.add_argument("--k", type=int, nargs="+", default=[8, 32], help="concurrent claimers, one run each")
    args = parser.parse_args()

    started = time.perf_counter()
    url = bench_database_url()
    recreate_database(url)
    os.environ["DATABASE_URL"] = url  # inherited by the worker processes
    configure_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    migrated = time.perf_counter()
    service_queue, raw_queue, reviewers = setup_fixtures(args.tasks, max(args.k))
    print(
        f"setup tasks={args.tasks} reviewers={len(reviewers)} create_and_migrate_seconds={migrated - started:.1f} "
        f"load_and_vacuum_seconds={time.perf_counter() - migrated:.1f}",
        flush=True,
    )

    lines = []
    try:
        for k in args.k:
            lines.append(run_k(k, args.tasks, args.seconds, service_queue, raw_queue, reviewers))
    finally:
        celery_messages, cache_keys = drop_celery_queue(), drop_cache_keys()
    print(f"{database_check()} celery_messages_enqueued={celery_messages} metric_keys={cache_keys}")
    print(f"total_seconds={time.perf_counter() - started:.0f}")
    print(
        "reference: the raw loop on 2 cores with PostgreSQL 15 reached ~2,700 cycles/s (p95 2.6 ms) at K=8 and "
        "~2,300/s (p95 16 ms) at K=32; targets ratio >= 0.5, p95_claim_ms <= 2x raw_p95_claim_ms, double_claims=0"
    )
    for line in lines:
        print(line)


def run_k(k: int, n_tasks: int, seconds: float, service_queue: int, raw_queue: int, reviewers: list[int]) -> str:
    """Both phases at K claimers; prints their headers and returns the K line."""
    vacuum()
    service = run_phase(service_worker, k, service_queue, reviewers, seconds)
    print(describe("service", k, n_tasks, service), flush=True)
    vacuum()
    raw = run_phase(raw_worker, k, raw_queue, reviewers, seconds)
    print(describe("raw", k, n_tasks, raw), flush=True)
    return (
        f"k={k} claims_per_s={service.rate:.0f} raw_sql_claims_per_s={raw.rate:.0f} "
        f"ratio={service.rate / raw.rate:.3f} p95_claim_ms={service.p95_ms:.2f} "
        f"raw_p95_claim_ms={raw.p95_ms:.2f} double_claims={service.double_claims + raw.double_claims}"
    )


if __name__ == "__main__":
    main()
