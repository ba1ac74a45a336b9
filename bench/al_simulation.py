"""Active-learning simulation: labels each query strategy needs to reach 95 % of full-data quality,
as a ratio to random sampling with a bootstrap interval over seeds.

    python bench/al_simulation.py                       # Toxic Spans + ConvAbuse from REVIEWAPP_DATA_DIR
    python bench/al_simulation.py --quick               # 5 seeds, pool <= 4,000, budget <= 800 labels
    python bench/al_simulation.py --prevalence 0.02     # harmful class at 2 % of the pool, PR-AUC target too
    python bench/al_simulation.py --dataset my.csv --format csv --text-col body --label-col verdict
    python bench/al_simulation.py --time-retrain 100000  # head retrain time on 384-dim embeddings

Run time on 2 shared, busy cores (2026-12, embeddings cached): --quick ~8 min, --quick
--prevalence 0.02 ~10 min; the default (10 seeds, 10 % checkpoints, pool <= 15,000) ~25 min. The default with
--prevalence 0.02 runs every strategy to 1,500 labels on Toxic Spans (random's PR-AUC curve
reaches its target only near the whole pool) and takes well over an hour.

Reviewers are simulated by gold labels (crowd majority for Toxic Spans and ConvAbuse). The
held-out test split shares no exact or near-duplicate text with the selectable pool
(`reviewapp.content_keys`): ConvAbuse keeps its authors' test split and drops from the pool every
item in a test item's content group; Toxic Spans and generic files hash the content group. The
first `#` lines say how many items that dropped. Items are embedded once with frozen MiniLM and
cached under OUT/cache, so later runs skip encoding.

Nothing is chosen on test figures. The head's settings (learning rate, weight decay) are chosen
from a small grid by macro-F1 (PR-AUC with --prevalence) on a dev split of the pool's content
groups, before any test figure exists; each round's early stopping uses a grouped dev split of
the labelled items. Test figures are only read: the full-data figure sets the target (95 % of
it), and random's run stops once its seed-mean curve has reached the target, stayed there, and
run 1.6 times that far (so resampled curves are measured past their crossing too); every other
strategy runs to the same budget, min(--budget, 2 × random's labels), past which it has lost anyway.

Reading: each strategy's curves are averaged over seeds and the label count read where the mean
curve reaches the target *and stays there* (a single noisy touch does not count). ratio_vs_random
is that count over random's; its interval is a paired percentile bootstrap over seeds (a
resample averages both strategies' curves over the same drawn seeds, then reads both counts).
A best strategy is named only when its interval lies below 1.0 and below every other strategy's;
otherwise the line says so. Least-confidence, margin and entropy rank a one-sigmoid (binary)
pool identically, so they run once as `uncertainty`, with the aliases printed.

--prevalence P: the pool's positive class is subsampled to P of the pool (real moderation
traffic is ~2 % harmful) and the test split is weighted to P (every test positive kept, each
weighted down, because a 2 % test split of ConvAbuse would hold ~14 positives); the minority
class's average precision (PR-AUC, scikit-learn) becomes a second target, reported beside macro-F1.

Writes OUT/<dataset>[-prevP]/curves.csv (one row per strategy, seed, checkpoint), summary.csv and
SVG learning curves (macro-F1, minority F1, minority PR-AUC vs labels). OUT (default bench/out/)
gets a `.gitignore` of `*` so results never land in a commit.

Prints, per dataset and target, one line per distinct strategy:
    strategy=… [same_as=…] target=… labels=… ratio_vs_random=… interval95=[…, …]
then `dataset=… target=… best_strategy=…|none ratio=… reference=random (why)`; the last line is
`best_strategy=…|none ratio=… interval95=… reference=random target=… datasets=…`: a strategy is
named only when every dataset names it; otherwise `closest=` is the strategy whose worst interval
over the datasets is lowest, with its worst dataset's ratio.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from activelearning.curve_reading import (  # noqa: E402
    CurvePoint,
    RatioEstimate,
    bootstrap_ratio,
    declare_best,
    labels_to_stay,
    mean_curve,
)
from activelearning.encoders import MiniLMEncoder, NumpyDiskCache, encode_cached  # noqa: E402
from activelearning.heads import HeadConfig, train_head  # noqa: E402
from activelearning.plots import line_chart_svg  # noqa: E402
from activelearning.simulation import (  # noqa: E402
    BINARY_UNCERTAINTY,
    DatasetFormat,
    Metric,
    SimulationSetup,
    TextDataset,
    choose_head,
    distinct_strategies,
    full_data_scores,
    geometric_checkpoints,
    load_dataset,
    run_curves,
    stays_reached,
    strategy_to_run,
    subsample,
    with_prevalence,
)
from activelearning.strategies import STRATEGIES  # noqa: E402
from tools.data import data_dir  # noqa: E402

# REVIEWAPP_DATA_DIR (default ../shared/data beside the clone; `make data` fetches it).
SHARED_DATA = data_dir()
DEFAULT_DATASETS: list[tuple[Path, DatasetFormat]] = [
    (SHARED_DATA / "toxic-spans", "toxic-spans"),
    (SHARED_DATA / "convabuse", "convabuse"),
]
TARGET_FRACTION = 0.95
# Random runs until its seed-mean curve has stayed at or above the target and is this far past its
# crossing, so that bootstrap resamples, which cross later, are still measured past theirs.
RANDOM_BEYOND = 1.6
# A linear head on frozen embeddings, retrained every round; its learning rate and weight decay
# are picked from this grid on a grouped dev split of the pool (`choose_head`), never on test.
HEAD_BASE = HeadConfig(hidden=0, dropout=0.2, lr=1e-2, weight_decay=1e-4, max_epochs=30, patience=5)
HEAD_GRID = [replace(HEAD_BASE, lr=lr, weight_decay=wd) for lr in (3e-3, 1e-2, 3e-2) for wd in (1e-4, 1e-2)]
HEAD_CHOICE_BUDGETS = (100, 1000)  # random labelled sets the grid is scored at: early and late in a curve
# Below this many labels a round trains without a dev split (fixed epochs): a few dozen dev items
# early-stopped heads that still predicted one class everywhere (seen on their dev loss).
MIN_DEV_LABELS = 200
DEFAULT_STRATEGIES = [*STRATEGIES, "margin+balanced", "badge+balanced"]
BALANCED = "+balanced"
RESAMPLES = 2000
QUICK = {"seeds": list(range(5)), "step": 1.25, "max_pool": 4000, "max_test": 1000, "budget": 800, "mc_samples": 5}
LABELS = {"macro_f1": "macro-F1", "minority_f1": "minority-class F1", "minority_ap": "minority-class PR-AUC"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, help="file or folder; default: Toxic Spans and ConvAbuse")
    parser.add_argument("--format", choices=["csv", "jsonl", "toxic-spans", "convabuse"])
    parser.add_argument("--text-col", default="text")
    parser.add_argument("--label-col", default="label")
    parser.add_argument("--positive-label", help="binary data: the harmful class (default: guessed, else the rarer)")
    parser.add_argument(
        "--strategy",
        nargs="+",
        default=DEFAULT_STRATEGIES,
        choices=[*STRATEGIES, *(name + BALANCED for name in STRATEGIES)],
        metavar="NAME[+balanced]",
        help=f"registered: {', '.join(STRATEGIES)}; '+balanced' splits each batch across predicted classes",
    )
    parser.add_argument(
        "--budget", type=int, default=1500, help="max labels per non-random strategy (also capped at 2x random's need)"
    )
    parser.add_argument("--initial", type=int, default=20, help="random seed set size")
    # Ten seeds and 10 % steps: with five seeds and 25 % steps ConvAbuse's best ratio read 0.519,
    # against 0.678 measured more finely; the coarse grid flattered the strategies.
    parser.add_argument("--step", type=float, default=1.1, help="checkpoint growth factor")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--max-pool", type=int, default=15000, help="subsample the pool above this (0 = all)")
    parser.add_argument("--max-test", type=int, default=2000, help="subsample the test split above this (0 = all)")
    parser.add_argument("--mc-samples", type=int, default=10, help="MC-dropout passes for BALD")
    parser.add_argument("--prevalence", type=float, help="subsample the pool's harmful class to this share (e.g. 0.02)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES, help="bootstrap resamples over seeds")
    parser.add_argument("--quick", action="store_true", help=f"fewer seeds and a smaller pool: {QUICK}")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--time-retrain", type=int, metavar="N", help="only time a head retrain on N×384 vectors")
    args = parser.parse_args(argv)
    if args.dataset is not None and args.format is None:
        parser.error("--dataset needs --format")
    if args.prevalence is not None and not 0 < args.prevalence < 0.5:
        parser.error("--prevalence must be in (0, 0.5)")
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def prepare_out(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ignore = out / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# benchmark results and embedding cache: never committed\n*\n")


def embed(dataset: TextDataset, cache_dir: Path) -> np.ndarray:
    encoder = MiniLMEncoder()
    started = time.perf_counter()
    vectors = encode_cached(encoder, dataset.texts, NumpyDiskCache(cache_dir))
    seconds = time.perf_counter() - started
    print(f"# {dataset.name}: {len(vectors)} MiniLM vectors ready in {seconds:.1f}s (cached in {cache_dir})")
    return vectors


def setup_for(dataset: TextDataset, vectors: np.ndarray, mc_samples: int) -> SimulationSetup:
    pool, test = ~dataset.test, dataset.test
    return SimulationSetup(
        x_pool=vectors[pool],
        y_pool=dataset.y[pool],
        x_test=vectors[test],
        y_test=dataset.y[test],
        task=dataset.task,
        classes=dataset.classes,
        head=HEAD_BASE,
        mc_samples=mc_samples,
        min_dev_labels=MIN_DEV_LABELS,
        minority=dataset.minority_class(np.flatnonzero(pool)),
        groups_pool=dataset.groups[pool],
        test_weight=None if dataset.test_weight is None else dataset.test_weight[test],
    )


def pick_head(setup: SimulationSetup, metrics: list[Metric], seeds: list[int], name: str) -> SimulationSetup:
    """The head chosen on the pool's grouped dev split; prints every candidate's dev score."""
    metric = metrics[-1]
    chosen, trials = choose_head(setup, HEAD_GRID, seeds=seeds[:2], budgets=HEAD_CHOICE_BUDGETS, metric=metric)
    grid = " ".join(f"lr={t.config.lr:g},wd={t.config.weight_decay:g}:{t.dev_score:.4f}" for t in trials)
    print(f"# {name}: head chosen on dev (20 % of pool content groups, dev {LABELS[metric]}): {grid}")
    print(f"# {name}: head lr={chosen.lr:g} weight_decay={chosen.weight_decay:g} (test not consulted)")
    return replace(setup, head=chosen)


def run_dataset(dataset: TextDataset, args: argparse.Namespace) -> dict[str, dict[str, RatioEstimate]]:
    """Simulate every distinct strategy on one dataset; print its lines; return target → run → estimate."""
    vectors = embed(dataset, args.out / "cache" / "embeddings")
    setup = setup_for(dataset, vectors, args.mc_samples)
    counts = {c: int((setup.y_pool == i).sum()) for i, c in enumerate(dataset.classes)}
    test_counts = {c: int((setup.y_test == i).sum()) for i, c in enumerate(dataset.classes)}
    print(
        f"# {dataset.name}: pool={len(setup.y_pool)} {counts} test={len(setup.y_test)} {test_counts} "
        f"minority={dataset.classes[setup.minority]}; " + "; ".join(dataset.notes)
    )
    metrics: list[Metric] = ["macro_f1", "minority_ap"] if args.prevalence else ["macro_f1"]
    setup = pick_head(setup, metrics, args.seeds, dataset.name)
    full = dict(zip(("macro_f1", "minority_f1", "minority_ap"), full_data_scores(setup, args.seeds), strict=True))
    targets = {m: TARGET_FRACTION * full[m] for m in metrics}
    print(
        f"# {dataset.name}: full-pool head on test: "
        + " ".join(f"{m}={v:.4f}" for m, v in full.items())
        + " targets: "
        + " ".join(f"{m}={v:.4f}" for m, v in targets.items())
    )
    if "minority_ap" in targets:
        weight = np.ones(len(setup.y_test)) if setup.test_weight is None else setup.test_weight
        chance = float(weight[setup.y_test == setup.minority].sum() / weight.sum())
        print(
            f"# {dataset.name}: minority PR-AUC by chance (its test prevalence) = {chance:.4f}; "
            f"a full-pool figure near it means the head has not learnt the class and ratios on it mean little"
        )
    points = run_strategy(setup, "random", len(setup.y_pool), targets, args)
    random_needed = [labels_to_stay(mean_curve(points, m), t) for m, t in targets.items()]
    worst = max((n for n in random_needed if n is not None), default=None)
    # Past twice random's need a strategy has lost anyway: stop there to bound the run time.
    budget = min(args.budget, len(setup.y_pool), math.ceil(2 * worst) if worst else args.budget)
    runs = distinct_strategies([s for s in args.strategy if s != "random"], dataset.task)
    for run in runs:
        points += run_strategy(setup, run, budget, None, args)
    return report(dataset, setup, points, runs, full, targets, budget, args)


def run_strategy(
    setup: SimulationSetup, run: str, stop: int, targets: dict[Metric, float] | None, args: argparse.Namespace
) -> list[CurvePoint]:
    """Curves of one run over every seed, to `stop` labels, or (random) until its stop rule holds."""
    started = time.perf_counter()
    base, balanced = strategy_to_run(run)
    checkpoints = geometric_checkpoints(args.initial, stop, args.step)
    until = stays_reached(targets, beyond=RANDOM_BEYOND) if targets else None
    points = run_curves(setup, base, seeds=args.seeds, checkpoints=checkpoints, until=until, balanced=balanced)
    points = [replace(p, strategy=run) for p in points]
    print(f"# {run}: {len(points)} rounds to {points[-1].labels} labels in {time.perf_counter() - started:.1f}s")
    return points


def same_as(run: str, runs: dict[str, list[str]]) -> str:
    """' same_as=…' naming the requested strategies a run stands for, when it stands for several."""
    names = runs.get(run, [run])
    if run.startswith("uncertainty"):
        suffix = BALANCED if run.endswith(BALANCED) else ""
        return " same_as=" + "=".join(b + suffix for b in BINARY_UNCERTAINTY) + "(binary:one_sigmoid)"
    return "" if names == [run] else " same_as=" + "=".join(names)


def show(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "inf"


def report(
    dataset: TextDataset,
    setup: SimulationSetup,
    points: list[CurvePoint],
    runs: dict[str, list[str]],
    full: dict[str, float],
    targets: dict[Metric, float],
    budget: int,
    args: argparse.Namespace,
) -> dict[str, dict[str, RatioEstimate]]:
    folder = args.out / (dataset.name + (f"-prev{args.prevalence:g}" if args.prevalence else ""))
    folder.mkdir(parents=True, exist_ok=True)
    reference = [p for p in points if p.strategy == "random"]
    print(
        f"# {dataset.name}: ratio = labels where the seed-mean curve reaches the target and stays, over random's; "
        f"interval95 = paired percentile bootstrap over {len(args.seeds)} seeds ({args.resamples} resamples); "
        f"non-random strategies run to at most {budget} labels; test split: {len(setup.y_test)} items"
        + (" weighted to the prevalence" if setup.test_weight is not None else "")
    )
    estimates: dict[str, dict[str, RatioEstimate]] = {}
    rows = []
    for metric, target in targets.items():
        estimates[metric] = {}
        for run in ["random", *runs]:
            own = [p for p in points if p.strategy == run]
            estimate = bootstrap_ratio(own, reference, metric, target, resamples=args.resamples)
            estimates[metric][run] = estimate
            labels = f"{estimate.labels:.0f}" if estimate.labels is not None else f">{own[-1].labels}"
            interval = f"[{show(estimate.low)},{show(estimate.high)}]"
            print(
                f"strategy={run}{same_as(run, runs)} target={metric}>={target:.4f} labels={labels} "
                f"ratio_vs_random={show(estimate.ratio)} interval95={interval}"
            )
            rows.append({"target": metric, "strategy": run, "labels": labels, "ratio_vs_random": show(estimate.ratio)})
            rows[-1].update(low=show(estimate.low), high=show(estimate.high))
        others = {n: e for n, e in estimates[metric].items() if n != "random"}
        best, why = declare_best(others)
        beating = [n for n, e in others.items() if e.high < 1.0]
        # The strategy the verdict is about: the winner, else the one `why` names, else the nearest miss.
        named = best or (
            min(beating, key=lambda n: others[n].ratio) if beating else min(others, key=lambda n: others[n].high)
        )
        shown = others[named]
        print(
            f"dataset={dataset.name} target={metric} best_strategy={best or 'none'} ratio={show(shown.ratio)} "
            f"interval95=[{show(shown.low)},{show(shown.high)}] reference=random ({why})"
        )
    write_outputs(folder, points, rows, full, targets, dataset)
    return estimates


def write_outputs(
    folder: Path,
    points: list[CurvePoint],
    rows: list[dict[str, str]],
    full: dict[str, float],
    targets: dict[Metric, float],
    dataset: TextDataset,
) -> None:
    with (folder / "curves.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(points[0])))
        writer.writeheader()
        writer.writerows(asdict(p) for p in points)
    with (folder / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    names = list(dict.fromkeys(p.strategy for p in points))
    for metric, label in LABELS.items():
        series = {n: mean_curve((p for p in points if p.strategy == n), metric) for n in names}
        lines = {"full data": full[metric]}
        if metric in targets:
            lines["95% target"] = targets[metric]  # type: ignore[index]
        svg = line_chart_svg(
            series,
            title=f"{dataset.name}: {label} on test vs labels (mean over seeds)",
            x_label="labels",
            y_label=label,
            log_x=True,
            hlines=lines,
        )
        (folder / f"curve_{metric}.svg").write_text(svg)
    print(f"# {dataset.name}: wrote {folder}/curves.csv, summary.csv, curve_*.svg")


def time_retrain(n: int) -> None:
    """Train the default MLP head on n synthetic unit vectors (384-dim), as a full retrain would."""
    gen = np.random.default_rng(0)
    x = gen.normal(size=(n, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    w = gen.normal(size=(384, 3))
    y = (gen.random((n, 3)) < 1 / (1 + np.exp(-(x @ w) * 4 + 2))).astype(np.float32)  # 3 policies, rare-ish
    cut = int(0.9 * n)
    for name, config in (("mlp", HeadConfig()), ("linear", HEAD_BASE)):
        started = time.perf_counter()
        head = train_head(x[:cut], y[:cut], x[cut:], y[cut:], labels=["a", "b", "c"], config=config)
        seconds = time.perf_counter() - started
        print(
            f"retrain head={name} n={n} dim=384 labels=3 epochs={head.history.epochs_run} "
            f"best_epoch={head.history.best_epoch} seconds={seconds:.1f}"
        )


def final_line(results: dict[str, dict[str, dict[str, RatioEstimate]]], metric: str) -> str:
    """One verdict over the datasets: a strategy is named only when every dataset names it (its
    interval below 1.0 and below every other strategy's there). Otherwise `best_strategy=none`,
    with the strategy whose worst interval (upper end) over the datasets is lowest as `closest`."""
    names = [n for n in next(iter(results.values()))[metric] if n != "random"]
    worst = {n: max((r[metric][n] for r in results.values()), key=lambda e: e.high) for n in names}
    closest = min(names, key=lambda n: (worst[n].high, worst[n].ratio))
    verdicts = {declare_best({n: e for n, e in r[metric].items() if n != "random"})[0] for r in results.values()}
    declared = verdicts.pop() if len(verdicts) == 1 and None not in verdicts else None
    shown = worst[declared or closest]
    if declared:
        why = ""
    elif shown.high < 1.0:
        why = f" closest={closest} (beats random within the interval on every dataset, but overlaps other strategies)"
    else:
        why = f" closest={closest} (no strategy beats random within the interval on every dataset)"
    return (
        f"best_strategy={declared or 'none'} ratio={show(shown.ratio)} "
        f"interval95=[{show(shown.low)},{show(shown.high)}] reference=random target={metric} "
        f"datasets={','.join(results)}{why}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.time_retrain:
        time_retrain(args.time_retrain)
        return 0
    prepare_out(args.out)
    sources = [(args.dataset, args.format)] if args.dataset else DEFAULT_DATASETS
    results: dict[str, dict[str, dict[str, RatioEstimate]]] = {}
    for path, fmt in sources:
        if not path.exists():
            print(f"# skipped {fmt}: {path} not found (run `make data`, or set REVIEWAPP_DATA_DIR)")
            continue
        dataset = load_dataset(
            path, fmt, text_col=args.text_col, label_col=args.label_col, positive=args.positive_label
        )
        if args.prevalence:  # before the size caps, so the rare class keeps every item it can
            dataset = with_prevalence(dataset, args.prevalence)
        dataset = subsample(dataset, max_pool=args.max_pool or None, max_test=args.max_test or None)
        results[dataset.name] = run_dataset(dataset, args)
    if results:
        print(final_line(results, "minority_ap" if args.prevalence else "macro_f1"))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
