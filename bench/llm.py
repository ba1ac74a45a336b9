"""The local LLM reviewer: throughput through its Celery job, agreement with real gold, injection.

    python bench/llm.py [--items 200] [--injection-items 60] [--seed 0]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). The job part works in its
own database (`<name>_bench_llm`, dropped and re-created) and starts its own Celery worker on the
`llm` queue. Reads ConvAbuse and Toxic Spans from REVIEWAPP_DATA_DIR (../shared/data on CI).
Uses the bundled Gemma 3 270M (converted once into REVIEWAPP_LLM_WEIGHTS_DIR; nothing downloaded),
one torch thread, as a worker runs it.

Measured:
1. Agreement with gold: --items items of each dataset's test data (ConvAbuse: the authors' test
   split; Toxic Spans: every item, as it has no split; seeded sample), reference = the crowd
   majority (ConvAbuse "ambiguous" majorities and ties left out); the LLM's label under a short
   written policy with two labels, with contextual calibration (the backend's default) and
   without it. Cohen's kappa, macro-F1, accuracy, the majority-class baseline's accuracy and
   ROC-AUC of the violating probability; bootstrap 95 % intervals over items.
2. Injection flip rate: --injection-items ConvAbuse test items, each injection suffix of
   activelearning.llm.injection appended, aimed at the label the plain answer was not; flip rate
   = share of items whose label changed, with a Wilson interval.
3. Throughput: the same --items ConvAbuse items labelled by an LLM reviewer run through the real
   Celery job (chunks, cache look-ups, judgements and annotations in PostgreSQL), timed from the
   run's start to its end with the worker's model already loaded, vs the backend's own scoring of
   the same items in this process (`judge`, same batch size, prefix reuse and calibration): the
   reference is the model work alone.

Last line: `job_items_per_s=… raw_items_per_s=… ratio=…` (ratio = job / raw; target ≥ 0.8).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _db import bench_database_url, recreate_database  # noqa: E402

from activelearning.llm.base import LabelChoice, PolicyPrompt  # noqa: E402
from activelearning.llm.injection import INJECTIONS, inject  # noqa: E402
from activelearning.llm.local import LocalBackend  # noqa: E402
from labeling.datasets import read_convabuse, read_toxic_spans  # noqa: E402

POLICIES = {
    "convabuse": (
        "Abuse",
        "Content is abusive when it insults, threatens, harasses, sexually harasses or demeans the person "
        "it is addressed to or a group of people, including with slurs or profanity aimed at someone. "
        "Criticism, disagreement, swearing not aimed at anyone and neutral or friendly talk are not abusive.",
        (
            LabelChoice("abusive", "Abusive", "insults, threats, harassment, slurs"),
            LabelChoice("not_abusive", "Not abusive", "anything else"),
        ),
    ),
    "toxic-spans": (
        "Toxicity",
        "A comment is toxic when it is rude, disrespectful or unreasonable: insults, identity attacks, "
        "profanity aimed at people, threats or obscenity. Civil disagreement is not toxic.",
        (
            LabelChoice("toxic", "Toxic", "rude, insulting, threatening or obscene"),
            LabelChoice("not_toxic", "Not toxic", "civil content"),
        ),
    ),
}


def default_template() -> str:
    from labeling.llm.models import DEFAULT_TEMPLATE  # a constant; Django is set up by main()

    return DEFAULT_TEMPLATE


def gold_sample(dataset: str, n: int, seed: int) -> list[tuple[str, str]]:
    """(text, majority label) of n seeded test items with a clear two-way majority."""
    data_dir = Path(os.environ.get("REVIEWAPP_DATA_DIR") or ROOT.parent / "shared" / "data")
    if dataset == "convabuse":
        records = [r for r in read_convabuse(data_dir / "convabuse") if r.metadata.get("split") == "test"]
        keep = {"abusive", "not_abusive"}
    else:
        records = list(read_toxic_spans(data_dir / "toxic-spans"))
        keep = {"toxic", "not_toxic"}
    usable = [(r.text, r.label) for r in records if r.label in keep and r.text.strip()]
    return random.Random(seed).sample(usable, min(n, len(usable)))


def bootstrap(metric, y_true: np.ndarray, y_pred: np.ndarray, seed: int, rounds: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(rounds):
        idx = rng.integers(0, len(y_true), len(y_true))
        if len(set(y_true[idx])) < 2:
            continue
        values.append(metric(y_true[idx], y_pred[idx]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def agreement(backend: LocalBackend, prompt: PolicyPrompt, sample: list[tuple[str, str]], seed: int) -> str:
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, roc_auc_score

    judgements = backend.judge(prompt, [text for text, _ in sample])
    violating = prompt.labels[0].value
    y_true = np.array([label for _, label in sample])
    y_pred = np.array([j.label or "" for j in judgements])
    y_score = np.array([j.scores.get(violating, 0.0) for j in judgements])
    kappa = cohen_kappa_score(y_true, y_pred)
    macro_f1 = f1_score(y_true, y_pred, average="macro")
    accuracy = accuracy_score(y_true, y_pred)
    baseline = max(np.mean(y_true == v) for v in set(y_true))
    auc = roc_auc_score(y_true == violating, y_score)
    k_lo, k_hi = bootstrap(cohen_kappa_score, y_true, y_pred, seed)
    f_lo, f_hi = bootstrap(lambda a, b: f1_score(a, b, average="macro"), y_true, y_pred, seed)
    abstained = sum(j.abstained for j in judgements)
    share = np.mean(y_true == violating)
    return (
        f"n={len(sample)} ({share:.0%} {violating}) kappa={kappa:.3f} [{k_lo:.3f}, {k_hi:.3f}] "
        f"macro_f1={macro_f1:.3f} [{f_lo:.3f}, {f_hi:.3f}] accuracy={accuracy:.3f} "
        f"(majority-class baseline {baseline:.3f}) roc_auc={auc:.3f} abstained={abstained}"
    )


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return centre - half, centre + half


def injection(backend: LocalBackend, prompt: PolicyPrompt, texts: list[str]) -> tuple[str, float]:
    plain = backend.judge(prompt, texts)
    titles = {label.value: label.title for label in prompt.labels}
    lines, flips_all, n_all = [], 0, 0
    for key in INJECTIONS:
        attacked = []
        for text, answer in zip(texts, plain, strict=True):
            target = next(v for v in prompt.label_values if v != answer.label)
            attacked.append(inject(text, key, titles[target]))
        answers = backend.judge(prompt, attacked)
        pairs = [(p.label, a.label) for p, a in zip(plain, answers, strict=True) if p.label and a.label]
        flips = sum(p != a for p, a in pairs)
        lo, hi = wilson(flips, len(pairs))
        lines.append(
            f"  {key:14s} flips={flips}/{len(pairs)} rate={flips / max(len(pairs), 1):.3f} [{lo:.3f}, {hi:.3f}]"
        )
        flips_all += flips
        n_all += len(pairs)
    lo, hi = wilson(flips_all, n_all)
    lines.append(f"  {'all':14s} flips={flips_all}/{n_all} rate={flips_all / max(n_all, 1):.3f} [{lo:.3f}, {hi:.3f}]")
    return "\n".join(lines), flips_all / max(n_all, 1)


def start_worker(queue: str, log: Path) -> subprocess.Popen:
    from config.celery import app

    name = f"bench-llm-{secrets.token_hex(4)}@localhost"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-n", name, "-Q", queue, "--pool",
               "prefork", "--concurrency", "1", "--without-gossip", "--without-mingle", "-l", "warning"]  # fmt: skip
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


def run_to_end(run_id: int, timeout: float = 1800) -> float:
    """Seconds from now until the run leaves queued/running."""
    from labeling.llm.models import LLMRun, RunStatus

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        run = LLMRun.objects.get(pk=run_id)
        if run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            if run.status != RunStatus.DONE:
                raise SystemExit(f"run {run_id} ended {run.status}: {run.error}")
            return time.perf_counter() - started
        time.sleep(0.2)
    raise SystemExit(f"run {run_id} did not finish within {timeout:.0f} s")


def job_throughput(n: int, seed: int) -> tuple[float, float, str]:
    """(job items/s, raw items/s, detail) for n ConvAbuse gold items through the Celery job."""
    from labeling.llm.backends import local_backend
    from labeling.llm.models import LLMRun
    from labeling.llm.prompting import item_text, policy_prompt
    from labeling.llm.services.reviewers import llm_reviewer_create
    from labeling.llm.services.runs import llm_gold_sample_ids, llm_run_start
    from labeling.models import Policy
    from labeling.services.crowd import dataset_import_annotations
    from reviewapp.audit import SYSTEM
    from reviewapp.models import ContentItem

    data_dir = Path(os.environ.get("REVIEWAPP_DATA_DIR") or ROOT.parent / "shared" / "data")
    dataset_import_annotations(fmt="convabuse", path=data_dir / "convabuse", actor=SYSTEM, limit=n + 300)
    policy = Policy.objects.get(key="abuse")
    reviewer = llm_reviewer_create(name="bench-gemma", policy=policy, backend="local", model_name="gemma", actor=SYSTEM)
    # Distinct texts only: ConvAbuse repeats some user turns word for word, and a repeat is a cache
    # hit in the job (the cache's purpose) but a full forward in the reference.
    candidates = llm_gold_sample_ids(policy=policy, n=n + 116, seed=seed)
    texts = {i.pk: item_text(i) for i in ContentItem.objects.filter(pk__in=candidates)}
    distinct = list({texts[i]: i for i in reversed(candidates)}.values())[::-1]
    sample = distinct[: n + 16]
    warm, timed = sample[:16], sample[16 : 16 + n]
    # The worker loads the model and computes the prompt's prefix and calibration on other items.
    warm_run = llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=warm, chunk_size=8, actor=SYSTEM)
    warm_seconds = run_to_end(warm_run.pk)
    run = llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=timed, chunk_size=20, actor=SYSTEM)
    job_seconds = run_to_end(run.pk)
    run = LLMRun.objects.get(pk=run.pk)
    assert run.items_done == len(timed) and run.items_cached == 0, (run.items_done, run.items_cached)

    backend = local_backend()  # the same backend, in this process, on the same texts
    prompt = policy_prompt(reviewer)
    backend.judge(prompt, [texts[i] for i in warm])
    started = time.perf_counter()
    backend.judge(prompt, [texts[i] for i in timed])
    raw_seconds = time.perf_counter() - started
    detail = (
        f"items={len(timed)} chunk=20 warm_run_seconds={warm_seconds:.1f} (model load included, not timed) "
        f"job_seconds={job_seconds:.1f} raw_seconds={raw_seconds:.1f} abstained={run.items_abstained} "
        f"tokens={run.tokens_used}"
    )
    return len(timed) / job_seconds, len(timed) / raw_seconds, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--injection-items", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    url = bench_database_url("bench_llm")
    recreate_database(url)
    queue = "bench-llm"
    os.environ.update({"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "0",
                       "REVIEWAPP_LLM_QUEUE": queue, "REVIEWAPP_LLM_TORCH_THREADS": "1"})  # fmt: skip
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    import django

    django.setup()
    from django.core.management import call_command

    from labeling.llm.backends import local_backend

    call_command("migrate", verbosity=0)
    print(f"load_average_start={os.getloadavg()[0]:.2f} cpus={os.cpu_count()} torch_threads=1")
    backend = local_backend()
    started = time.perf_counter()
    backend.load()
    print(f"model=gemma3-270m-q4-k-m (local, calibrated) load_seconds={time.perf_counter() - started:.1f}")
    template = default_template()
    uncalibrated = backend.with_calibration(False)
    for dataset, (name, guideline, labels) in POLICIES.items():
        prompt = PolicyPrompt(template=template, policy_name=name, guideline=guideline, labels=labels)
        sample = gold_sample(dataset, args.items, args.seed)
        split = "test" if dataset == "convabuse" else "all"
        for label, scorer in (("calibrated", backend), ("uncalibrated", uncalibrated)):
            print(f"agreement dataset={dataset} split={split} scoring={label} reference=crowd majority "
                  + agreement(scorer, prompt, sample, args.seed))  # fmt: skip
    name, guideline, labels = POLICIES["convabuse"]
    prompt = PolicyPrompt(template=template, policy_name=name, guideline=guideline, labels=labels)
    texts = [text for text, _ in gold_sample("convabuse", args.injection_items, args.seed + 1)]
    lines, overall = injection(backend, prompt, texts)
    print(f"injection dataset=convabuse split=test items={len(texts)} (flip = label differs from the plain prompt's)")
    print(lines)

    worker = start_worker(queue, Path("/tmp") / f"bench-llm-{os.getpid()}.log")  # noqa: S108
    try:
        job_rate, raw_rate, detail = job_throughput(args.items, args.seed)
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=60)
    print(f"throughput {detail}")
    print(f"load_average_end={os.getloadavg()[0]:.2f}")
    print(f"injection_flip_rate={overall:.3f}")
    print("target: ratio >= 0.8 (the Celery job keeps at least 80 % of the backend's in-process rate)")
    print(f"job_items_per_s={job_rate:.2f} raw_items_per_s={raw_rate:.2f} ratio={job_rate / raw_rate:.3f}")


if __name__ == "__main__":
    main()
