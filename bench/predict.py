"""Online predictions through POST /api/v1/models/{policy}/predict, against a raw torch forward in process.

    python bench/predict.py [--encoder minilm|hashed] [--items 3000] [--batch 100] [--workers 1]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_bench_predict`, dropped and re-created); the server is the production one (gunicorn,
`config.wsgi`, DJANGO_DEBUG=0, started as bench/load.py starts it, with bench/_load_server.py
fencing its cache keys and Celery messages off). Artifacts go to REVIEWAPP_MODEL_DIR/<bench
database>/ and are deleted.

Data: ConvAbuse texts (REVIEWAPP_DATA_DIR/convabuse, `make data`); the first 400 carry gold and
train a model through the services a round uses (requests name its version, so the figures do not
depend on whether promotion judged it better than nothing). The other texts are the ones
predicted. For MiniLM every text's vector is in the ItemEmbedding cache first (the texts were
ingested and scored before: the usual case), so both sides read cached vectors.

- predict: one client sends the texts in batches of `--batch` items, one request after another,
  after warm-up requests that load torch and the model in every worker; items/s over the whole
  run, and the p50/p95 latency of one request seen by the client (HTTP, JSON, token check,
  cache lookup by text sha256, head forward, JSON answer).
- raw-model-forward (the reference of the last line): the whole model in this process on the same
  texts and batches, no HTTP, no database, no cache: the encoder (MiniLM's transformer forward, or
  hashing the n-grams) and then the head. This is what serving the model costs without this
  service; the endpoint reads cached vectors instead of running the encoder.
- raw-head-forward: the head alone on features already in memory (the cached vectors, or the
  hashed bags): a floor no HTTP service reaches, printed with its own ratio for comparison.
Last line: `ratio=` predict items/s ÷ raw-model-forward items/s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import bench_database_url, recreate_database  # noqa: E402
from load import configure_django, server_environment, start_server, stop_server  # noqa: E402

from tools.data import data_dir  # noqa: E402

N_GOLD = 400


def setup(n_items: int, encoder: str) -> tuple[Any, list[str], str]:
    """Policy, champion trained on the first N_GOLD texts, the texts to predict, a models:predict token."""
    from activelearning.services import rounds
    from activelearning.services.evaluation import model_version_evaluate
    from activelearning.services.features import encoder_for_run, item_embeddings
    from activelearning.services.promotion import model_version_promote
    from activelearning.services.training import training_run_execute
    from labeling.datasets import read_convabuse
    from labeling.models import GoldLabel, Policy, PolicyVersion
    from reviewapp.audit import SYSTEM
    from reviewapp.models import ContentItem, Queue, RoutingRule
    from reviewapp.services.tokens import token_create

    records = [r for r in read_convabuse(data_dir() / "convabuse") if r.label is not None]
    records = list({r.text: r for r in records}.values())[: n_items + N_GOLD]
    schema = {"labels": [{"value": "violating"}, {"value": "not_violating"}]}
    policy = Policy.objects.create(key="bench-predict", name="Bench predict")
    version = PolicyVersion.objects.create(policy=policy, number=1, guideline="…", label_schema=schema)
    queue = Queue.objects.create(slug="bench", name="Bench")
    RoutingRule.objects.create(policy=policy, queue=queue, auto_clear=0.1, auto_action=0.95)
    items = ContentItem.objects.bulk_create(
        ContentItem(source="convabuse", external_id=r.external_id, text=r.text) for r in records
    )
    GoldLabel.objects.bulk_create(
        GoldLabel(item=item, policy=policy, policy_version=version, source="adjudication",
                  labels=["violating" if r.label == "abusive" else "not_violating"])
        for item, r in zip(items[:N_GOLD], records[:N_GOLD], strict=True)
    )  # fmt: skip
    if encoder == "minilm":  # every text seen before: its vector is cached, as after pool scoring
        item_embeddings(encoder_for_run("minilm", {}), [i.pk for i in items], [i.text for i in items])
    enqueue, rounds.enqueue_after_commit = rounds.enqueue_after_commit, lambda task, *ids: None  # trained here
    try:
        run = rounds.training_run_start(policy=policy, actor=SYSTEM, params={"encoder": encoder, "pipeline": "train"})
        model = training_run_execute(run_id=run.pk)
        rounds.training_run_finish(run_id=run.pk)
    finally:
        rounds.enqueue_after_commit = enqueue
    model_version_evaluate(version_id=model.pk, n_bootstrap=0)
    model_version_promote(version_id=model.pk)
    _, secret = token_create(name="bench-predict", scopes=["models:predict"], actor=SYSTEM)
    return model, [r.text for r in records[N_GOLD:]], secret


def batches(texts: list[str], size: int) -> list[list[str]]:
    return [texts[start : start + size] for start in range(0, len(texts), size)]


def drive(
    base_url: str, secret: str, texts: list[str], size: int, number: int
) -> tuple[float, list[float], list[float]]:
    """(seconds, per-request latencies, scores) for every batch, sent one after another."""
    import httpx

    headers = {"Authorization": f"Bearer {secret}", "X-Forwarded-Proto": "https"}
    url = f"{base_url}/api/v1/models/bench-predict/predict"
    latencies, scores = [], []

    def post(client: httpx.Client, batch: list[str]) -> httpx.Response:
        response = client.post(url, json={"items": [{"text": t} for t in batch], "version": number})
        if response.status_code != 200:
            raise SystemExit(f"predict answered {response.status_code}: {response.text[:500]}")
        return response

    with httpx.Client(headers=headers, timeout=120) as client:
        for batch in batches(texts, size)[:4]:  # warm-up: every worker loads torch and the model
            post(client, batch)
        started = time.perf_counter()
        for batch in batches(texts, size):
            sent = time.perf_counter()
            response = post(client, batch)
            latencies.append(time.perf_counter() - sent)
            scores.extend(row["score"] for row in response.json()["items"])
        return time.perf_counter() - started, latencies, scores


def raw_forward(version: Any, texts: list[str], size: int) -> tuple[float, list[float]]:
    """(seconds, scores) of the head alone on in-memory features of the same batches."""
    import numpy as np

    from activelearning.encoders import HashedNgramEncoder
    from activelearning.head_inputs import Bags
    from activelearning.services.features import encoder_from_stored, text_embeddings
    from activelearning.services.registry import loaded_model

    head, encoder = loaded_model(version).head, encoder_from_stored(version.encoder_config)
    if isinstance(encoder, HashedNgramEncoder):
        features = [Bags.from_list(encoder.bags(b), encoder.hash_config.num_buckets) for b in batches(texts, size)]
    else:
        vectors = text_embeddings(encoder, texts)  # from the cache: nothing is encoded here
        features = [vectors[start : start + size] for start in range(0, len(texts), size)]
    head.predict_proba(features[0])  # warm-up
    started = time.perf_counter()
    probs = [head.predict_proba(f) for f in features]
    seconds = time.perf_counter() - started
    positive = version.head_labels.index(version.positive_label)
    return seconds, np.concatenate(probs)[:, positive].tolist()


def raw_model_forward(version: Any, texts: list[str], size: int) -> float:
    """Seconds for the whole model (encoder, then head) on the same batches, with no cache."""
    from activelearning.encoders import HashedNgramEncoder
    from activelearning.head_inputs import Bags
    from activelearning.services.features import encoder_from_stored
    from activelearning.services.registry import loaded_model

    head, encoder = loaded_model(version).head, encoder_from_stored(version.encoder_config)

    def forward(batch: list[str]) -> Any:
        if isinstance(encoder, HashedNgramEncoder):
            return head.predict_proba(Bags.from_list(encoder.bags(batch), encoder.hash_config.num_buckets))
        return head.predict_proba(encoder.encode(batch))

    forward(texts[:size])  # warm-up: loads the encoder
    started = time.perf_counter()
    for batch in batches(texts, size):
        forward(batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", choices=["minilm", "hashed"], default="minilm")
    parser.add_argument("--items", type=int, default=3000, help="texts predicted (besides the 400 gold)")
    parser.add_argument("--batch", type=int, default=100, help="items per predict request")
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker")
    args = parser.parse_args()

    env = server_environment(bench_database_url("bench_predict"))
    env["REVIEWAPP_API_RATE"] = "1000000/min"  # the bench measures serving, not the rate limit
    recreate_database(env["DATABASE_URL"])
    configure_django(env)
    import os

    from django.core.management import call_command

    from activelearning.services.registry import model_root

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    version, texts, secret = setup(args.items, args.encoder)
    print(
        f"setup encoder={args.encoder} items={len(texts)} batch={args.batch} workers={args.workers} "
        f"threads={args.threads} seconds={time.perf_counter() - started:.0f} load_average={os.getloadavg()[0]:.2f}",
        flush=True,
    )
    server_args = SimpleNamespace(workers=args.workers, worker_class="gthread", threads=args.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-predict-") as folder:
            server = start_server(server_args, env, Path(folder))  # type: ignore[arg-type]
            try:
                raw_before, raw_scores = raw_forward(version, texts, args.batch)
                seconds, latencies, served = drive(server.base_url, secret, texts, args.batch, version.number)
                raw_after, _ = raw_forward(version, texts, args.batch)
                model_seconds = raw_model_forward(version, texts, args.batch)
            finally:
                stop_server(server)
    finally:
        shutil.rmtree(model_root(), ignore_errors=True)
    if served != raw_scores:
        raise SystemExit("the endpoint's scores differ from the in-process head's on the same batches")
    raw_seconds = (raw_before + raw_after) / 2  # before and after: both sides see the same background drift
    predict_rate, raw_rate = len(texts) / seconds, len(texts) / raw_seconds
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=20)[-1]
    print(f"predict items_per_s={predict_rate:.0f} requests={len(latencies)} seconds={seconds:.2f}")
    print(f"predict latency_ms_per_{args.batch}_items p50={p50 * 1000:.1f} p95={p95 * 1000:.1f}")
    model_rate = len(texts) / model_seconds
    print(f"raw-head-forward items_per_s={raw_rate:.0f} seconds_before={raw_before:.3f} seconds_after={raw_after:.3f}")
    print(f"raw-head-forward ratio={predict_rate / raw_rate:.4f} (predict ÷ the head alone on in-memory features)")
    print(f"raw-model-forward items_per_s={model_rate:.0f} seconds={model_seconds:.2f} (encoder + head, no cache)")
    print("scores: identical (==) to the in-process head on every item")
    print(f"load_average_end={os.getloadavg()[0]:.2f}")
    print(f"encoder={args.encoder} ratio={predict_rate / model_rate:.4f} reference=raw-model-forward")


if __name__ == "__main__":
    main()
