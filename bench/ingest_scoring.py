"""Ingest throughput with a live in-app model scoring every new item, against ingest with none.

    python bench/ingest_scoring.py [--n 10000] [--batch 1000]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_bench_ingest_scoring`, dropped and re-created) and on a Celery queue of its own consumed
by a worker it starts (one process), so no other worker or database is touched.

Set-up: the policies, queues and rules of bench/ingest.py, plus a policy whose hashed n-gram model
is trained here on 400 gold labels (Toxic Spans when present, else synthetic sentences).
Phases, in one run, each ingesting --n new rows through the full API path (Django test client,
token auth, validation, routing, audit) in batches of --batch:
- without (the reference): no deployed model; run before and after the `with` phase and averaged,
  so that drifting load on a shared machine favours neither side;
- with: the trained version live. Every batch's new items are sent after commit to the worker,
  which scores them and writes `al-<policy>@v1` decisions through ingest, routed. Timed from the
  first request until the last row is ingested *and* scored by the live model (the worker starts
  warm: a small batch is scored first, outside the timing). The ingest requests alone are also
  timed and printed.
Last line: `ratio=<with/without> reference=ingest-without-live-model`, rows/s ingested and
scored against rows/s ingested with nothing deployed (target ≥ 0.9).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import bench_database_url, recreate_database  # noqa: E402
from ingest import make_rows, setup_fixtures  # noqa: E402
from scoring import SCORING_QUEUE, TRAINING_QUEUE, setup_data, start_worker, train  # noqa: E402


def ingest(rows: list[dict], batch: int, secret: str) -> float:
    from django.test import Client

    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    bodies = [json.dumps({"decisions": rows[i : i + batch]}) for i in range(0, len(rows), batch)]
    started = time.perf_counter()
    for body in bodies:
        response = client.post("/api/v1/decisions", body, content_type="application/json")
        if response.status_code != 200:
            raise SystemExit(f"ingest failed: {response.status_code} {response.content[:500]!r}")
    return time.perf_counter() - started


def phase_rows(n: int, phase: str) -> list[dict]:
    return [{**row, "external_id": f"{phase}-{row['external_id']}"} for row in make_rows(n, seed=sum(phase.encode()))]


def live_decisions(version: Any) -> int:
    from reviewapp.models import ModelDecision

    return ModelDecision.objects.filter(
        policy_id=version.policy_id, model_name=version.model_name, model_version=version.version_label
    ).count()


def wait_scored(version: Any, expected: int, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while live_decisions(version) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"the live model scored {live_decisions(version)} of {expected} items in {timeout}s")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="rows per phase")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    url = bench_database_url("bench_ingest_scoring")
    recreate_database(url)
    os.environ.update({
        "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "0",
        "REVIEWAPP_AL_SCORING_QUEUE": SCORING_QUEUE, "REVIEWAPP_AL_TRAINING_QUEUE": TRAINING_QUEUE,
        "REVIEWAPP_AL_MIN_GOLD": "50", "DJANGO_ALLOWED_HOSTS": "testserver", "DJANGO_SECURE_SSL_REDIRECT": "0",
    })  # fmt: skip
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()
    from django.core.management import call_command

    from activelearning.services.deployment import model_deploy
    from activelearning.services.registry import model_root
    from reviewapp.audit import SYSTEM

    call_command("migrate", verbosity=0)
    secret = setup_fixtures()
    policy, _ = setup_data(400, source="bench-model")  # 400 gold items: the model's training set
    version = train(policy, "hashed")
    print(f"load_average_start={os.getloadavg()[0]:.2f} cpus={os.cpu_count()} rows={args.n} batch={args.batch}")
    worker = start_worker(1, Path("/tmp") / f"bench-ingest-scoring-{os.getpid()}.log")  # noqa: S108
    try:
        before = args.n / ingest(phase_rows(args.n, "without-1"), args.batch, secret)
        model_deploy(version_id=version.pk, mode="live", actor=SYSTEM)
        ingest(phase_rows(50, "warm-up"), args.batch, secret)  # the worker loads the model here
        wait_scored(version, 50)
        started = time.perf_counter()
        requests_seconds = ingest(phase_rows(args.n, "with"), args.batch, secret)
        wait_scored(version, 50 + args.n)
        with_rate = args.n / (time.perf_counter() - started)
        _undeploy(policy.pk)
        after = args.n / ingest(phase_rows(args.n, "without-2"), args.batch, secret)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=60)
        shutil.rmtree(model_root(), ignore_errors=True)
    without = (before + after) / 2
    print(f"without_live_model rows_per_s_before={before:.0f} rows_per_s_after={after:.0f} mean={without:.0f}")
    print(
        f"with_live_model ingest_requests_rows_per_s={args.n / requests_seconds:.0f} "
        f"ingested_and_scored_rows_per_s={with_rate:.0f} scored={args.n}"
    )
    print(f"load_average_end={os.getloadavg()[0]:.2f}")
    print("target: ratio >= 0.9 (ingest with a live model scoring new items keeps 90 % of ingest without)")
    print(f"ratio={with_rate / without:.3f} reference=ingest-without-live-model")


def _undeploy(policy_id: int) -> None:
    """Nothing live again for the second reference phase (a bench-only reset, not a product action)."""
    from activelearning.models import ModelDeployment

    ModelDeployment.objects.filter(policy_id=policy_id).update(live=None, shadow=None, shadow_until=None)


if __name__ == "__main__":
    main()
