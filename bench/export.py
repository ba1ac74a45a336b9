"""Dataset export throughput and memory through the real API path, against COPY of the same rows.

    python bench/export.py [--sizes 10000,100000,1000000]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_export_bench`, dropped and re-created), so it never touches real data.

For each N (ascending, in one process) it tops the gold labels up to N with set-based SQL,
builds a snapshot of all of them (`snapshot_create`: frozen rows, statistics, content hash),
then downloads its JSONL export through the full Django stack (middleware, token auth, the
streaming export view) with Django's test client, reading every byte. The reference runs
`COPY (<the export's own SELECT>) TO STDOUT` of the same rows, in the same order. Peak memory is
the process's maximum resident set size so far (it can only grow, so a flat value from the
smallest to the largest N means the export's memory does not depend on N).
Each N prints `rows_per_s=… copy_rows_per_s=… ratio=… peak_rss_mb=…`; the last line is the
largest N's (the target: ratio >= 0.3 at 1M rows, peak memory within 50 MB from 10k to 1M).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import bench_database_url, recreate_database  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def setup_fixtures() -> tuple[int, int, int, int, str]:
    """A policy with a version, a lead, a dataset and a read token; returns their ids and the secret."""
    from django.contrib.auth.models import User

    from labeling.exports.snapshots import SnapshotFilter, dataset_create
    from labeling.models import Policy, PolicyVersion
    from reviewapp.audit import SYSTEM
    from reviewapp.models import ServiceToken

    schema = {"labels": [{"value": "violating"}, {"value": "not_violating"}]}
    policy = Policy.objects.create(key="hate", name="Hate")
    version = PolicyVersion.objects.create(policy=policy, number=1, guideline="…", label_schema=schema)
    lead = User.objects.create_user("lead")
    dataset = dataset_create(
        slug="bench", name="Bench", filters=SnapshotFilter(), actor=SYSTEM, group_by="meta:conversation_id"
    )
    secret = ServiceToken.new_secret()
    ServiceToken.objects.create(
        name="bench", prefix=secret[:8], key_hash=ServiceToken.hash_secret(secret), scopes=["export:read"]
    )
    return policy.pk, version.pk, lead.pk, dataset.pk, secret


def add_gold(first: int, last: int, policy_id: int, version_id: int, lead_id: int) -> None:
    """Items first..last with one gold label each, made in SQL (a million in well under a minute)."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO reviewapp_contentitem (source, external_id, modality, title, text, media_urls, context,
                                               metadata, reach)
            SELECT 'comments', 'c-' || s, 'text', '',
                   'comment ' || s || ' ' || md5(s::text) || ' you are such a clown, write to me at user'
                       || s || '@example.com or call +44 20 7946 ' || lpad((s %% 10000)::text, 4, '0'),
                   CASE WHEN s %% 10 = 0 THEN jsonb_build_array('https://media.example.com/' || s || '.jpg')
                        ELSE '[]'::jsonb END,
                   CASE WHEN s %% 4 = 0 THEN '[{"author": "u1", "text": "what do you think of this?"}]'::jsonb
                        ELSE '[]'::jsonb END,
                   jsonb_build_object('language', (ARRAY['en', 'de', 'fr'])[1 + s %% 3],
                                      'region', (ARRAY['GB', 'US', 'IN', 'BR'])[1 + s %% 4],
                                      'conversation_id', 'conv-' || (s / 3)),
                   s %% 1000
            FROM generate_series(%s, %s) s
            """,
            [first, last],
        )
        cursor.execute(
            """
            INSERT INTO labeling_goldlabel (item_id, policy_id, policy_version_id, version, labels, severity,
                source, annotation_ids, n_annotations, agreement, adjudicator_id, route, routing_outcome,
                sampling_propensity, note)
            SELECT i.id, %s, %s, 1,
                   CASE WHEN i.id %% 3 = 0 THEN '["violating"]' ELSE '["not_violating"]' END::jsonb, '',
                   (ARRAY['consensus', 'consensus', 'adjudication', 'honeypot', 'appeal'])[1 + i.id %% 5],
                   jsonb_build_array(3 * i.id, 3 * i.id + 1, 3 * i.id + 2), 3,
                   CASE WHEN i.id %% 2 = 0 THEN 1.0 ELSE 2.0 / 3 END,
                   CASE WHEN i.id %% 5 = 2 THEN %s END,
                   (ARRAY['low_confidence', 'audit_sample', 'active_learning'])[1 + i.id %% 3],
                   'review', CASE WHEN i.id %% 3 = 1 THEN 0.05 ELSE 1.0 END, ''
            FROM reviewapp_contentitem i
            WHERE NOT EXISTS (SELECT 1 FROM labeling_goldlabel g WHERE g.item_id = i.id)
            """,
            [policy_id, version_id, lead_id],
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reviewapp_contentitem; ANALYZE labeling_goldlabel")


def warm_up(secret: str) -> None:
    """One request first, so URL configuration and view imports are not timed as export."""
    from django.test import Client

    Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/datasets/")


def export_through_api(secret: str, version: int) -> tuple[float, int, int]:
    """Seconds, rows (lines) and bytes of the JSONL export read through the API."""
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    started = time.perf_counter()
    response = client.get(f"/api/v1/datasets/bench/versions/{version}/export", {"format": "jsonl"})
    if response.status_code != 200 or not response.streaming:
        raise SystemExit(f"export failed: {response.status_code} {response.content[:500]!r}")
    lines = size = 0
    for data in response.streaming_content:  # type: ignore[attr-defined]
        lines += data.count(b"\n")
        size += len(data)
    response.close()
    return time.perf_counter() - started, lines, size


def copy_reference(snapshot_id: int) -> tuple[float, int, int]:
    """Seconds, rows and bytes of COPY (the export's SELECT) TO STDOUT."""
    from django.db import connection

    from labeling.exports.rows import reference_sql

    connection.ensure_connection()
    raw = connection.connection
    lines = size = 0
    started = time.perf_counter()
    with raw.cursor() as cursor, cursor.copy(f"COPY ({reference_sql(snapshot_id)}) TO STDOUT") as copy:
        for data in copy:
            lines += bytes(data).count(b"\n")
            size += len(data)
    return time.perf_counter() - started, lines, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated N, ascending")
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.sizes.split(","))

    url = bench_database_url("export_bench")
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ["REVIEWAPP_EXPORT_STREAM_MAX_ROWS"] = str(max(sizes))  # measure the streaming path
    import django

    django.setup()
    from django.core.management import call_command

    from labeling.exports.snapshots import SnapshotFilter, snapshot_create
    from reviewapp.audit import SYSTEM

    print("reference: COPY … TO STDOUT of 1M rows reached ~395,000 rows/s on 2 cores; target ratio >= 0.3 at 1M")
    call_command("migrate", verbosity=0)
    policy_id, version_id, lead_id, dataset_id, secret = setup_fixtures()
    warm_up(secret)
    made = 0
    for n in sizes:
        started = time.perf_counter()
        add_gold(made + 1, n, policy_id, version_id, lead_id)
        made = n
        generated = time.perf_counter() - started
        started = time.perf_counter()
        snapshot = snapshot_create(dataset_id=dataset_id, filters=SnapshotFilter(), actor=SYSTEM)
        built = time.perf_counter() - started
        api_seconds, api_rows, api_bytes = export_through_api(secret, snapshot.version)
        copy_seconds, copy_rows, copy_bytes = copy_reference(snapshot.pk)
        if not api_rows == copy_rows == n == snapshot.row_count:
            raise SystemExit(f"row counts disagree: api={api_rows} copy={copy_rows} snapshot={snapshot.row_count}")
        rate, copy_rate = n / api_seconds, n / copy_seconds
        print(
            f"n={n} generate_s={generated:.1f} build_s={built:.1f} export_s={api_seconds:.2f} "
            f"copy_s={copy_seconds:.2f} export_mb={api_bytes / 1e6:.0f} copy_mb={copy_bytes / 1e6:.0f}",
            flush=True,
        )
        print(
            f"rows_per_s={rate:.0f} copy_rows_per_s={copy_rate:.0f} ratio={rate / copy_rate:.3f} "
            f"peak_rss_mb={peak_rss_mb():.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
