"""Claim latency on a production-sized queue table, against the same claims on an empty queue.

    python bench/queue_scale.py [--open 1000000] [--decided 5000000] [--k 4] [--claims 300] [--rounds 3]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in two databases of
its own, `<name>_bench_queue_large` and `<name>_bench_queue_empty` (dropped and re-created), so it
never touches real data; the Celery tasks that submits enqueue go to a queue of their own
(`bench_queue_scale`) and the metrics counters to cache keys of their own, both deleted at the end.

Setup: both databases get the same policy, queue (required_annotations=1) and reviewers.
- large: --open + --decided content items and one task each, written with set-based SQL
  (INSERT … SELECT over generate_series; secondary indexes and foreign keys are built after the
  load), a few minutes for 6M tasks. The decided tasks (completed and resolved, one in 25
  escalated or cancelled) are spread evenly between the open ones, so every heap page holds both,
  as in a queue that has been worked for months; each completed task has the annotation that
  decided it, by one of 50 reviewers (about 100,000 each at full size): the claimers are among
  them, so the claim's "not already labelled by this reviewer" check meets a real history. Then
  VACUUM ANALYZE.
- empty: only the open tasks the claims of one round use, no history at all; emptied and filled
  again before each round, so it never has any.

Each round measures both queues, the empty one first in odd rounds and the large one first in
even rounds, so that neither always runs after the other. A phase is K processes (spawn context),
each with django.setup() (DEBUG off, as in production), that start together and loop
`task_claim_next` then `annotation_submit(labels=["violating"])`, as the workspace does, --claims
times after one untimed warm-up cycle; the timed claim is the whole `task_claim_next` call. The
tables are vacuumed before every phase. load1 is the machine's load average when the phase ended
(2 cores: above ~1.5 other work competes with the bench).

Also printed: the plan of every statement that the claim service and the lease sweep run on the
large table (EXPLAIN ANALYZE inside a transaction that is rolled back): the indexes they read,
any sequential scan, buffers touched, planning and execution time (a prepared claim, as on a
connection that has claimed a few times, skips the planning).

Last line: `p95_claim_ms_large=… p95_claim_ms_empty=… ratio=…` over all rounds (ratio = large /
empty; target <= 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from threading import BrokenBarrierError
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from multiprocessing.queues import Queue as MpQueue
    from multiprocessing.synchronize import Barrier

    import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.claims import (  # noqa: E402 (after the path set-up above)
    bench_database_url,
    configure_django,
    drop_cache_keys,
    drop_celery_queue,
    percentile,
    recreate_database,
)

QUEUE_SLUG = "bench-scale"
CELERY_QUEUE = "bench_queue_scale"
CACHE_PREFIX = "reviewapp-bench-queue-scale"
REVIEWERS = 50

# Task g of n (ids 1..n in a fresh table) is open when it is one of n_open spread evenly over n;
# priorities and due times are scrambled by id so that claim order is not heap order.
INSERT_TASKS_SQL = """
INSERT INTO reviewapp_reviewtask
       (item_id, policy_id, queue_id, reason, priority, due_at, sampling_propensity, status,
        annotation_count, created_at, completed_at, resolved_at)
SELECT i.id, %(policy)s, %(queue)s, 'low_confidence', ((i.id * 7919) %% 1000) / 1000.0,
       statement_timestamp() + ((i.id * 104729) %% 1440) * interval '1 minute', 1.0, s.status,
       CASE s.status WHEN 'completed' THEN 1 ELSE 0 END,
       statement_timestamp() - (%(total)s - i.id) * interval '1 second',
       CASE WHEN s.status <> 'open' THEN statement_timestamp() - (%(total)s - i.id) * interval '1 second' END,
       CASE WHEN s.status = 'completed' THEN statement_timestamp() - (%(total)s - i.id) * interval '1 second' END
  FROM reviewapp_contentitem i
 CROSS JOIN LATERAL (
       SELECT CASE WHEN i.id * %(open)s / %(total)s > (i.id - 1) * %(open)s / %(total)s THEN 'open'
                   WHEN i.id %% 50 = 0 THEN 'escalated'
                   WHEN i.id %% 50 = 1 THEN 'cancelled'
                   ELSE 'completed' END AS status) s
"""

INSERT_ITEMS_SQL = """
INSERT INTO reviewapp_contentitem (source, external_id, modality, title, text, media_urls, context, metadata, reach)
SELECT 'bench', 'c-' || lpad(g::text, 10, '0'), 'text', '', 'bench comment number ' || g, '[]', '[]',
       '{"language": "en"}', g %% 5000
  FROM generate_series(1, %(total)s) g
"""

# Submission ids from the task id: unique, and in index order, so 5M of them load quickly.
INSERT_ANNOTATIONS_SQL = """
INSERT INTO labeling_annotation
       (task_id, item_id, policy_id, policy_version_id, reviewer_id, submission_id, labels, severity,
        rationale, handle_time_ms, late, source, created_at)
SELECT t.id, t.item_id, t.policy_id, %(version)s, (%(reviewers)s::bigint[])[1 + t.id / 50 %% %(n_reviewers)s],
       lpad(to_hex(t.id), 32, '0')::uuid, '["violating"]', '', '', 5000 + t.id %% 20000, false, 'workspace',
       t.completed_at
  FROM reviewapp_reviewtask t
 WHERE t.status = 'completed'
"""

EMPTY_TABLES_SQL = """
TRUNCATE reviewapp_auditevent, labeling_annotation, reviewapp_taskskip, reviewapp_reviewtask,
         reviewapp_contentitem RESTART IDENTITY CASCADE
"""

LOADED_TABLES = ("reviewapp_contentitem", "reviewapp_reviewtask", "labeling_annotation")
VACUUMED_TABLES = (*LOADED_TABLES, "reviewapp_auditevent")


@dataclass
class Fixtures:
    policy: int
    version: int
    queue: int
    reviewers: list[int]  # the history's; the first K are the claimers

    def claimers(self, k: int) -> list[int]:
        return self.reviewers[:k]


@dataclass
class Report:
    latencies: list[float] = field(default_factory=list)
    claimed_ids: list[int] = field(default_factory=list)
    resumed: int = 0
    submit_errors: int = 0
    drained: bool = False
    error: str = ""


@dataclass
class Phase:
    latencies: list[float]
    double_claims: int
    resumed: int
    submit_errors: int
    drained: bool
    load1: float

    def describe(self) -> str:
        latencies = sorted(self.latencies)
        return (
            f"claims={len(latencies)} p50_claim_ms={percentile(latencies, 0.50) * 1000:.2f} "
            f"p95_claim_ms={percentile(latencies, 0.95) * 1000:.2f} double_claims={self.double_claims} "
            f"resumed={self.resumed} submit_errors={self.submit_errors} queue_drained={self.drained} "
            f"load1={self.load1:.2f}"
        )


def execute(url: str, statement: str, params: dict[str, Any] | None = None) -> None:
    """Run one statement in autocommit on the database at `url` (set-based loads, VACUUM)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement, params)


def create_fixtures() -> Fixtures:
    """Policy, queue and reviewers in the database Django is set up for."""
    from django.contrib.auth.models import User
    from django.db import transaction

    from labeling.models import Policy, PolicyVersion
    from reviewapp.models import Queue

    schema = {"labels": [{"value": "violating"}, {"value": "not_violating"}]}
    with transaction.atomic():
        policy = Policy.objects.create(key="harassment", name="Harassment")
        version = PolicyVersion.objects.create(policy=policy, number=1, guideline="…", label_schema=schema)
        queue = Queue.objects.create(slug=QUEUE_SLUG, name="Queue at scale", required_annotations=1)
        reviewers = User.objects.bulk_create(User(username=f"reviewer{i}") for i in range(REVIEWERS))
    return Fixtures(policy.pk, version.pk, queue.pk, [u.pk for u in reviewers])


def fill(url: str, fixtures: Fixtures, n_open: int, n_decided: int) -> dict[str, float]:
    """Items, tasks and the annotations of completed tasks; returns seconds per step."""
    import psycopg

    total = n_open + n_decided
    steps: dict[str, tuple[str, dict[str, Any]]] = {
        "items": (INSERT_ITEMS_SQL, {"total": total}),
        "tasks": (
            INSERT_TASKS_SQL,
            {"policy": fixtures.policy, "queue": fixtures.queue, "open": n_open, "total": total},
        ),
        "annotations": (
            INSERT_ANNOTATIONS_SQL,
            {
                "version": fixtures.version,
                "reviewers": fixtures.reviewers,
                "n_reviewers": len(fixtures.reviewers),
            },
        ),
    }
    seconds = {}
    with psycopg.connect(url, autocommit=True) as conn, keys_built_after_load(conn, LOADED_TABLES, seconds):
        for name, (statement, params) in steps.items():
            started = time.perf_counter()
            conn.execute(statement, params)
            seconds[name] = time.perf_counter() - started
    return seconds


@contextlib.contextmanager
def keys_built_after_load(conn: psycopg.Connection, tables: Sequence[str], seconds: dict[str, float]) -> Iterator[None]:
    """Drop the secondary indexes and foreign keys of `tables`; build them again after the load.

    One index build over the loaded rows, and one join to check a foreign key, are many times
    faster than keeping them up to date row by row. Primary keys and unique constraints stay;
    the loads write those keys in ascending order. The keys hold by construction, and are checked.
    """
    definitions = conn.execute(
        """
        SELECT 'index', c.relname, x.relname, pg_get_indexdef(i.indexrelid)
          FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class x ON x.oid = i.indexrelid
         WHERE c.relname = ANY(%(tables)s)
           AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.contype IN ('p', 'u'))
        UNION ALL
        SELECT 'foreign key', c.relname, k.conname, pg_get_constraintdef(k.oid)
          FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
         WHERE c.relname = ANY(%(tables)s) AND k.contype = 'f'
        """,
        {"tables": list(tables)},
    ).fetchall()
    for kind, table, name, _ in definitions:
        if kind == "foreign key":
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        else:
            conn.execute(f'DROP INDEX "{name}"')
    yield
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '512MB'")
    for kind, table, name, definition in definitions:
        if kind == "foreign key":
            conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        else:
            conn.execute(definition)
    seconds["keys"] = time.perf_counter() - started


def vacuum(url: str) -> None:
    for table in VACUUMED_TABLES:
        execute(url, f"VACUUM ANALYZE {table}")


def claimer(url: str, queue_id: int, reviewer_id: int, claims: int, barrier: Barrier, results: MpQueue) -> None:
    """One reviewer claiming and answering through the services, as the workspace does."""
    report = Report()
    try:
        os.environ["DATABASE_URL"] = url
        configure_django(cache_prefix=CACHE_PREFIX, celery_queue=CELERY_QUEUE)
        from django.contrib.auth.models import User

        from labeling.services.annotations import SubmissionRejected, annotation_submit
        from reviewapp.models import Queue
        from reviewapp.services.claims import task_claim_next

        reviewer = User.objects.get(pk=reviewer_id)
        queue = Queue.objects.get(pk=queue_id)

        def submit(task_id: int) -> None:
            try:
                annotation_submit(task_id=task_id, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
            except SubmissionRejected:
                report.submit_errors += 1

        # Untimed: lazy imports, the broker connection and the like are start-up costs that a
        # long-running web worker has long paid.
        warm_up = task_claim_next(reviewer=reviewer, queue=queue)
        if warm_up is not None:
            submit(warm_up.task.pk)
        barrier.wait()
        for _ in range(claims):
            started = time.perf_counter()
            claim = task_claim_next(reviewer=reviewer, queue=queue)
            report.latencies.append(time.perf_counter() - started)
            if claim is None:
                report.drained = True
                break
            if claim.resumed:
                report.resumed += 1
            else:
                report.claimed_ids.append(claim.task.pk)
            submit(claim.task.pk)
    except Exception as exc:  # reported to the parent, which stops the run
        report.error = f"{type(exc).__name__}: {exc}"
        barrier.abort()
    results.put(report)


def run_phase(url: str, fixtures: Fixtures, k: int, claims: int) -> Phase:
    """Start K claimers, release them together, and combine what they report."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(k + 1)
    results = ctx.Queue()
    processes = [
        ctx.Process(target=claimer, args=(url, fixtures.queue, reviewer, claims, barrier, results))
        for reviewer in fixtures.claimers(k)
    ]
    for process in processes:
        process.start()
    with contextlib.suppress(BrokenBarrierError):  # a claimer failed to start; its report says why
        barrier.wait(timeout=300)
    reports = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    failed = [r.error for r in reports if r.error]
    if failed:
        raise SystemExit(f"{len(failed)} claimer(s) failed; first: {failed[0]}")
    ids = Counter(i for r in reports for i in r.claimed_ids)
    return Phase(
        latencies=[s for r in reports for s in r.latencies],
        double_claims=sum(count - 1 for count in ids.values() if count > 1),
        resumed=sum(r.resumed for r in reports),
        submit_errors=sum(r.submit_errors for r in reports),
        drained=any(r.drained for r in reports),
        load1=os.getloadavg()[0],
    )


def explain_services(fixtures: Fixtures) -> list[str]:
    """EXPLAIN ANALYZE every statement of a claim and of a lease sweep, on Django's database.

    Each statement is explained in a transaction that is rolled back, so nothing is claimed.
    """
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from reviewapp.models import Queue
    from reviewapp.services.claims import task_claim_next
    from reviewapp.services.leases import task_leases_expire

    reviewer = User.objects.get(pk=fixtures.reviewers[0])
    queue = Queue.objects.get(pk=fixtures.queue)
    services: dict[str, Callable[[], object]] = {
        "task_claim_next": lambda: task_claim_next(reviewer=reviewer, queue=queue),
        "task_leases_expire": task_leases_expire,
    }
    lines = []
    for name, call in services.items():
        for number, (sql, params) in enumerate(captured_statements(call), start=1):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
                plan = cursor.fetchone()[0]
                transaction.set_rollback(True)
            lines.append(f"plan service={name} statement={number} {summarize_plan(plan)}")
    return lines


def captured_statements(call: Callable[[], object]) -> list[tuple[str, Any]]:
    """The SQL statements (and parameters) that `call` runs, in a transaction that is rolled back."""
    from django.db import connection, transaction

    statements: list[tuple[str, Any]] = []

    def capture(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        statements.append((sql, params))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(capture):
        call()
        transaction.set_rollback(True)
    return statements


def summarize_plan(plan: Any) -> str:
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    indexes: list[str] = []
    seq_scans: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if "Index Name" in node:
            indexes.append(node["Index Name"])
        if node["Node Type"] == "Seq Scan":
            seq_scans.append(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(top["Plan"])
    return (
        f"indexes={','.join(dict.fromkeys(indexes)) or 'none'} seq_scans={','.join(seq_scans) or 'none'} "
        f"shared_hit={top['Plan'].get('Shared Hit Blocks', 0)} shared_read={top['Plan'].get('Shared Read Blocks', 0)} "
        f"planning_ms={top['Planning Time']:.2f} execution_ms={top['Execution Time']:.2f}"
    )


def table_sizes(url: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        sizes = conn.execute(
            """
            SELECT pg_total_relation_size('reviewapp_reviewtask') / 1048576,
                   pg_relation_size('reviewtask_claim') / 1048576,
                   (SELECT count(*) FROM reviewapp_reviewtask WHERE status = 'open'),
                   (SELECT count(*) FROM reviewapp_reviewtask WHERE status <> 'open'),
                   (SELECT count(*) FROM labeling_annotation)
            """
        ).fetchone()
    assert sizes is not None
    return (
        f"task_table_mb={sizes[0]} claim_index_mb={sizes[1]} open={sizes[2]} decided={sizes[3]} annotations={sizes[4]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--open", type=int, default=1_000_000, help="open tasks in the large queue")
    parser.add_argument("--decided", type=int, default=5_000_000, help="decided tasks in the large queue")
    parser.add_argument("--k", type=int, default=4, help="concurrent claimers")
    parser.add_argument("--claims", type=int, default=300, help="timed claims per claimer and phase")
    parser.add_argument("--rounds", type=int, default=3, help="empty-then-large rounds")
    args = parser.parse_args()

    started = time.perf_counter()
    large_url, empty_url = bench_database_url("_bench_queue_large"), bench_database_url("_bench_queue_empty")
    recreate_database(large_url)
    os.environ["DATABASE_URL"] = large_url
    configure_django(cache_prefix=CACHE_PREFIX, celery_queue=CELERY_QUEUE)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    fixtures = create_fixtures()
    connection.close()
    # The empty queue's database: the same schema, policy, queue and reviewers (ids included).
    recreate_database(empty_url, template=large_url)
    loaded = fill(large_url, fixtures, args.open, args.decided)
    vacuum_started = time.perf_counter()
    vacuum(large_url)
    print(
        f"setup {' '.join(f'{name}_seconds={s:.0f}' for name, s in loaded.items())} "
        f"vacuum_seconds={time.perf_counter() - vacuum_started:.0f} {table_sizes(large_url)}",
        flush=True,
    )

    # Per round: every claimer's claims plus its warm-up cycle, and as many again so that the
    # queue does not run dry at the end of the round.
    empty_open = 2 * args.k * (args.claims + 1)
    phases: dict[str, list[Phase]] = {"empty": [], "large": []}
    try:
        for round_number in range(1, args.rounds + 1):
            execute(empty_url, EMPTY_TABLES_SQL)
            fill(empty_url, fixtures, empty_open, 0)
            cases = (("empty", empty_url), ("large", large_url))
            for case, url in cases if round_number % 2 else reversed(cases):
                vacuum(url)
                phase = run_phase(url, fixtures, args.k, args.claims)
                phases[case].append(phase)
                print(f"round={round_number} queue={case} {phase.describe()}", flush=True)
        for line in explain_services(fixtures):
            print(line, flush=True)
    finally:
        celery_messages, cache_keys = drop_celery_queue(CELERY_QUEUE), drop_cache_keys(CACHE_PREFIX)
    print(f"celery_messages_enqueued={celery_messages} metric_keys={cache_keys}")
    print(f"total_seconds={time.perf_counter() - started:.0f}")
    summary = {case: combine(rounds) for case, rounds in phases.items()}
    print(f"empty open={empty_open} history=0 {summary['empty'].describe()}")
    print(f"large open={args.open} decided={args.decided} {summary['large'].describe()}")
    p95 = {case: percentile(sorted(phase.latencies), 0.95) * 1000 for case, phase in summary.items()}
    print(
        f"p95_claim_ms_large={p95['large']:.2f} p95_claim_ms_empty={p95['empty']:.2f} "
        f"ratio={p95['large'] / p95['empty']:.2f}"
    )


def combine(rounds: list[Phase]) -> Phase:
    return Phase(
        latencies=[s for phase in rounds for s in phase.latencies],
        double_claims=sum(phase.double_claims for phase in rounds),
        resumed=sum(phase.resumed for phase in rounds),
        submit_errors=sum(phase.submit_errors for phase in rounds),
        drained=any(phase.drained for phase in rounds),
        load1=max(phase.load1 for phase in rounds),
    )


if __name__ == "__main__":
    main()
