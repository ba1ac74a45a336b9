"""Ingest throughput through the real API path, against PostgreSQL COPY of the same rows.

    python bench/ingest.py [--n 50000] [--batch 1000]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_bench`, dropped and re-created), so it never touches real data.

The API path is the full Django stack (middleware, token auth, JSON parsing, per-row validation,
routing, audit) through Django's test client, in batches of --batch rows. The reference loads
the same rows with COPY into a table with the same unique key as the decisions table.
Last line: `ingest_rows_per_s=… copy_rows_per_s=… ratio=…` (ratio = API / COPY).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POLICIES = ["harassment", "hate", "spam"]
WORDS = [
    "the",
    "a",
    "you",
    "this",
    "that",
    "people",
    "never",
    "always",
    "really",
    "think",
    "post",
    "comment",
    "video",
    "stream",
    "reply",
    "thread",
    "stupid",
    "clown",
    "idiot",
    "great",
    "love",
    "awful",
    "nice",
    "buy",
    "cheap",
    "click",
    "link",
    "free",
    "winner",
    "account",
    "today",
]


def bench_database_url() -> str:
    url = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(url._replace(path=url.path.rstrip("/") + "_bench"))


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def make_rows(n: int, seed: int = 11) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 40)))
        row = {
            "source": "comments",
            "external_id": f"c-{i}",
            "text": text,
            "metadata": {"language": "en", "region": rng.choice(["GB", "US", "IN", "BR"]), "surface": "comments"},
            "reach": int(rng.paretovariate(1.2) * 10),
            "policy": POLICIES[i % len(POLICIES)],
            "model_name": "tox-bert",
            "model_version": "2026.11",
            "score": round(rng.random(), 4),
        }
        if i % 4 == 0:
            row["context"] = [{"author": "u1", "text": "what do you think of this?"}]
        if i % 3 == 0:
            row["evidence_spans"] = [{"start": 0, "end": min(5, len(text)), "label": "insult"}]
        rows.append(row)
    return rows


def setup_fixtures() -> str:
    """Policies, queues and rules as a deployment would have them; returns a token secret."""
    from labeling.models import Policy, PolicyVersion
    from reviewapp.audit import SYSTEM
    from reviewapp.models import Queue, RoutingRule
    from reviewapp.services.tokens import token_create

    schema = {"labels": [{"value": "violating"}, {"value": "not_violating"}]}
    review = Queue.objects.create(slug="review", name="Review", sla_minutes=240)
    audit = Queue.objects.create(slug="audit", name="Audit", kind="audit")
    for key in POLICIES:
        policy = Policy.objects.create(key=key, name=key.title())
        PolicyVersion.objects.create(policy=policy, number=1, guideline="…", label_schema=schema)
        RoutingRule.objects.create(
            policy=policy,
            auto_clear=0.15,
            auto_action=0.9,
            audit_rate_clear=0.01,
            audit_rate_action=0.05,
            queue=review,
            audit_queue=audit,
        )
    _, secret = token_create(name="bench", scopes=["decisions:write"], actor=SYSTEM)
    return secret


def run_api(rows: list[dict], batch: int, secret: str) -> float:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    bodies = [json.dumps({"decisions": rows[i : i + batch]}) for i in range(0, len(rows), batch)]
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/decisions", body, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"ingest failed: {response.status_code} {response.content[:500]!r}")
    return time.perf_counter() - started


def run_copy(rows: list[dict]) -> float:
    """COPY the same rows into a table with the decision table's unique key and an item key."""
    from django.db import connection

    columns = [
        "source",
        "external_id",
        "text",
        "context",
        "metadata",
        "reach",
        "policy",
        "model_name",
        "model_version",
        "score",
        "evidence_spans",
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            DROP TABLE IF EXISTS bench_copy_decisions;
            CREATE TABLE bench_copy_decisions (
                id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                source text NOT NULL, external_id text NOT NULL, text text NOT NULL, context jsonb,
                metadata jsonb, reach bigint, policy text NOT NULL, model_name text NOT NULL,
                model_version text NOT NULL, score float8 NOT NULL, evidence_spans jsonb,
                UNIQUE (source, external_id, policy, model_name, model_version)
            );
            CREATE INDEX ON bench_copy_decisions (source, external_id);
            """
        )
    records = [
        (
            r["source"],
            r["external_id"],
            r["text"],
            json.dumps(r.get("context", [])),
            json.dumps(r["metadata"]),
            r["reach"],
            r["policy"],
            r["model_name"],
            r["model_version"],
            r["score"],
            json.dumps(r.get("evidence_spans", [])),
        )
        for r in rows
    ]
    raw = connection.connection
    started = time.perf_counter()
    with raw.cursor() as cursor, cursor.copy(f"COPY bench_copy_decisions ({', '.join(columns)}) FROM STDIN") as copy:
        for record in records:
            copy.write_row(record)
    raw.commit()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    url = bench_database_url()
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reviewapp.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    secret = setup_fixtures()
    rows = make_rows(args.n)

    api_seconds = run_api(rows, args.batch, secret)
    copy_seconds = run_copy(rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM reviewapp_modeldecision")
        stored = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM reviewapp_reviewtask")
        tasks = cursor.fetchone()[0]
    if stored != args.n:
        raise SystemExit(f"expected {args.n} decisions stored, found {stored}")
    api_rate = args.n / api_seconds
    copy_rate = args.n / copy_seconds
    print(
        f"n={args.n} batch={args.batch} api_seconds={api_seconds:.2f} copy_seconds={copy_seconds:.2f} "
        f"decisions_stored={stored} tasks_created={tasks}"
    )
    print(
        "reference: COPY of 1M such rows into an indexed table reached ~93,000 rows/s on 2 cores; "
        "target ratio >= 0.25 and >= 2,000 decisions/s"
    )
    print(f"ingest_rows_per_s={api_rate:.0f} copy_rows_per_s={copy_rate:.0f} ratio={api_rate / copy_rate:.3f}")


if __name__ == "__main__":
    main()
