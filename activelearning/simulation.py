"""Active-learning simulation: reviewers are simulated by a dataset's gold labels.

A `TextDataset` holds texts with one gold class each and a held-out test split that no strategy
ever sees and that shares no content with the selectable pool: rows are grouped by
`reviewapp.content_keys` (normalised text, near duplicates by character-shingle Jaccard). A
dataset's own test split is kept and every pool row whose group holds a test row, or that is a
near duplicate of a test-side group (a bridge), is dropped; otherwise the split hashes the group
key and bridging test rows are dropped. `notes` carries the counts (see `content_split`).

`simulate` runs rounds of select → label (reveal gold) → retrain on the labelled pool and
evaluates every round on the test split, giving a learning curve per strategy and seed. Head
settings are chosen by `choose_head` on a dev split carved from the pool by content group, never
on test; the early-stopping dev split inside each round is grouped by content too.

The curves are read in `activelearning.curve_reading` (seed means, crossings that stay,
bootstrap intervals over seeds). `distinct_strategies` runs least-confidence, margin and
entropy once for one-sigmoid (binary) tasks, where they rank a pool identically.

`with_prevalence` subsamples the pool's positive class to a given share (real moderation
traffic has ~2 % harmful items) and weights the test split to that share, and every round also
records the minority class's average precision (PR-AUC) so curves can be read on that target.

Gold for crowd data is the annotators' majority (ties dropped): Toxic Spans toxic vs not toxic;
ConvAbuse abusive vs not (ambiguous counts as not abusive). Any CSV/JSONL with a text and a
label column works too: two label values make a binary task, more make a multiclass one.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.metrics import average_precision_score, f1_score

from activelearning.curve_reading import CurvePoint, labels_to_stay, mean_curve
from activelearning.evaluation import Task
from activelearning.heads import HeadConfig, TrainedHead, train_head
from activelearning.strategies import PoolView, Strategy, get_strategy
from labeling.datasets import (
    CONVABUSE,
    TOXIC_SPANS,
    DatasetRecord,
    majority_label,
    read_convabuse,
    read_table,
    read_toxic_spans,
)
from reviewapp.content_keys import CONTENT_KEY_VERSION, content_groups, leaking_rows

DatasetFormat = Literal["csv", "jsonl", "toxic-spans", "convabuse"]
Metric = Literal["macro_f1", "minority_f1", "minority_ap"]
# Label spellings that mean "the harmful class" when a generic file has exactly two labels.
_POSITIVE_SPELLINGS = ("1", "true", "yes", "toxic", "abusive", "hateful", "offensive", "harmful", "spam", "positive")
_POOL, _TEST = 0, 1
# For one sigmoid these three scores are monotone in |p − 0.5|, so they pick the same items.
BINARY_UNCERTAINTY = ("least_confidence", "margin", "entropy")
UNCERTAINTY = "uncertainty"


class SimulationError(ValueError):
    """A dataset that cannot be simulated on (one class, too few items)."""


@dataclass(frozen=True)
class TextDataset:
    name: str
    texts: list[str]
    ids: list[str]
    y: np.ndarray  # (n,) int64 class index into `classes`
    classes: list[str]  # binary: [negative, positive]
    task: Task  # "binary" or "multiclass"
    test: np.ndarray  # (n,) bool: held out, never selectable or trained on
    groups: np.ndarray  # (n,) int64 content group (exact and near duplicates share one)
    notes: list[str] = field(default_factory=list)  # what was dropped or subsampled, for the report
    test_weight: np.ndarray | None = None  # (n,) weights of test rows when reweighted to a prevalence

    @property
    def head_labels(self) -> list[str]:
        """One sigmoid per label: the positive class for binary data, every class for multiclass."""
        return [self.classes[1]] if self.task == "binary" else list(self.classes)

    def minority_class(self, rows: np.ndarray | None = None) -> int:
        counts = np.bincount(self.y if rows is None else self.y[rows], minlength=len(self.classes))
        return int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))

    def take(self, rows: np.ndarray, notes: list[str]) -> TextDataset:
        """The dataset restricted to `rows` (in that order), with `notes`."""
        return replace(
            self,
            texts=[self.texts[i] for i in rows],
            ids=[self.ids[i] for i in rows],
            y=self.y[rows],
            test=self.test[rows],
            groups=self.groups[rows],
            notes=notes,
            test_weight=None if self.test_weight is None else self.test_weight[rows],
        )


def convabuse_gold(record: DatasetRecord) -> str | None:
    # Binarise each annotator's first answer before the vote: "ambiguous" is not a verdict of abuse.
    votes = [replace(a, label="abusive" if a.label == "abusive" else "not_abusive") for a in record.annotations]
    return majority_label(votes)


def stable_unit(key: str) -> float:
    """A key's position in [0, 1), stable across runs and machines (first 8 bytes of sha256)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64


def _choose_classes(labels: Sequence[str], positive: str | None) -> tuple[list[str], Task]:
    counts = Counter(labels)
    if len(counts) < 2:
        raise SimulationError(f"need at least two label values, found {sorted(counts)}")
    if len(counts) > 2:
        return sorted(counts), "multiclass"
    if positive is None:
        spelled = [c for c in counts if c.strip().lower() in _POSITIVE_SPELLINGS]
        # Otherwise the rarer value: in moderation data the harm is the rare class.
        positive = spelled[0] if len(spelled) == 1 else min(sorted(counts), key=lambda c: counts[c])
    if positive not in counts:
        raise SimulationError(f"positive label {positive!r} is not among {sorted(counts)}")
    negative = next(c for c in sorted(counts) if c != positive)
    return [negative, positive], "binary"


def content_split(
    texts: Sequence[str], ids: Sequence[str], own_test: np.ndarray | None, *, name: str, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(test, keep, group ids, notes): a held-out split that shares no content with the pool.

    With the dataset's own test split (`own_test`), that split is kept as the authors published
    it and the pool gives way: every pool row in a content group that holds a test row, and
    every pool row that is a near duplicate of such a group (a bridge), is dropped. Without one,
    the test split is a stable hash of the group key below `test_fraction`, so duplicates fall
    on one side, and test rows bridging to a pool group are dropped from the test split.
    """
    # A text that normalises to nothing ("?", ":/") is keyed by its stripped raw text, so
    # identical punctuation-only texts are one group too; only an empty text falls back to its id.
    fallback = [f"raw:{t.strip()}" if t.strip() else f"id:{i}" for t, i in zip(texts, ids, strict=True)]
    groups = content_groups(texts, fallback_keys=fallback)
    group_ids = groups.group_ids()
    keep = np.ones(len(texts), dtype=bool)
    if own_test is not None:
        test = np.asarray(own_test, dtype=bool)
        test_side = np.isin(group_ids, group_ids[test])  # a whole group goes where its test rows are
        shared = test_side & ~test
        bridged = leaking_rows(groups, np.where(test_side, _TEST, _POOL), held_out=[_POOL])
        keep &= ~(shared | bridged)
        notes = [
            "test split: the dataset's own; pool rows sharing content with it dropped: "
            f"{int(shared.sum())} in a test row's content group, {int(bridged.sum())} near duplicates of one"
        ]
    else:
        test = np.asarray([stable_unit(f"{name}:{key}") < test_fraction for key in groups.keys])
        bridged = leaking_rows(groups, np.where(test, _TEST, _POOL), held_out=[_TEST])
        keep &= ~bridged
        notes = [
            f"test split: stable hash of the content group, {test_fraction:.0%}; "
            f"{int(bridged.sum())} test rows near-duplicating a pool group dropped"
        ]
    notes.append(f"content key {CONTENT_KEY_VERSION}")
    return test, keep, group_ids, notes


def dataset_from_records(
    records: Iterable[DatasetRecord],
    *,
    name: str,
    gold: Callable[[DatasetRecord], str | None] = lambda r: r.label,
    positive: str | None = None,
    test_fraction: float = 0.2,
) -> TextDataset:
    """Gold-labelled texts with a held-out test split that shares no content with the pool.

    The test split is the file's own ("split" metadata == "test", as in ConvAbuse) when there is
    one, else a stable hash of the content group (see `content_split`). Items without a gold
    label (annotator ties, blank label cells) are dropped and counted.
    """
    kept: list[tuple[DatasetRecord, str]] = []
    dropped = 0
    for record in records:
        label = gold(record)
        if label is None:
            dropped += 1
        else:
            kept.append((record, label))
    if not kept:
        raise SimulationError(f"{name}: no record has a gold label")
    classes, task = _choose_classes([label for _, label in kept], positive)
    index = {c: i for i, c in enumerate(classes)}
    own_split = any(r.metadata.get("split") == "test" for r, _ in kept)
    texts = [r.text for r, _ in kept]
    ids = [r.external_id for r, _ in kept]
    own_test = np.asarray([r.metadata.get("split") == "test" for r, _ in kept]) if own_split else None
    test, keep, group_ids, split_notes = content_split(texts, ids, own_test, name=name, test_fraction=test_fraction)
    notes = [f"{dropped} items without a gold label dropped"] if dropped else []
    full = TextDataset(
        name=name,
        texts=texts,
        ids=ids,
        y=np.asarray([index[label] for _, label in kept], dtype=np.int64),
        classes=classes,
        task=task,
        test=test,
        groups=group_ids,
    )
    return full.take(np.flatnonzero(keep), notes + split_notes)


def load_dataset(
    path: Path,
    fmt: DatasetFormat,
    *,
    text_col: str = "text",
    label_col: str = "label",
    positive: str | None = None,
    test_fraction: float = 0.2,
) -> TextDataset:
    """Read a dataset with the `labeling.datasets` readers and attach gold classes and the test split."""
    path = Path(path)
    if fmt == "toxic-spans":
        return dataset_from_records(
            read_toxic_spans(path), name=TOXIC_SPANS, positive=positive or "toxic", test_fraction=test_fraction
        )
    if fmt == "convabuse":
        return dataset_from_records(
            read_convabuse(path),
            name=CONVABUSE,
            gold=convabuse_gold,
            positive=positive or "abusive",
            test_fraction=test_fraction,
        )
    records = read_table(path, fmt, text_col=text_col, label_col=label_col, id_col=None)
    return dataset_from_records(records, name=path.stem, positive=positive, test_fraction=test_fraction)


def subsample(dataset: TextDataset, *, max_pool: int | None, max_test: int | None) -> TextDataset:
    """Keep at most `max_pool` pool and `max_test` test items, chosen by a stable hash of the id.

    Hash order (not a seeded draw) so every run and every strategy sees the same subsample.
    """
    keep = np.zeros(len(dataset.y), dtype=bool)
    notes = list(dataset.notes)
    for part, limit, label in ((~dataset.test, max_pool, "pool"), (dataset.test, max_test, "test")):
        rows = np.flatnonzero(part)
        if limit is not None and len(rows) > limit:
            order = sorted(rows, key=lambda i: stable_unit(f"subsample:{dataset.ids[i]}"))
            rows = np.asarray(order[:limit])
            notes.append(f"{label} subsampled to {limit} of {int(part.sum())} items")
        keep[rows] = True
    smaller = dataset.take(np.flatnonzero(keep), notes)
    if dataset.test_weight is None:
        return smaller
    # Reweighted test (see `with_prevalence`): keep the positives' share of the test mass.
    share = _positive_share(dataset.y, dataset.test, dataset.test_weight)
    return replace(smaller, test_weight=prevalence_weights(smaller.y, smaller.test, share))


def _positive_share(y: np.ndarray, test: np.ndarray, weight: np.ndarray) -> float:
    return float(weight[test & (y == 1)].sum() / weight[test].sum())


def prevalence_weights(y: np.ndarray, test: np.ndarray, prevalence: float) -> np.ndarray:
    """(n,) weights: 1 everywhere but on test positives, weighted so they are `prevalence` of the test mass."""
    positive, negative = test & (y == 1), test & (y != 1)
    if not positive.any() or not negative.any():
        raise SimulationError("the test split needs both classes to weight it")
    weight = np.ones(len(y))
    weight[positive] = prevalence / (1 - prevalence) * negative.sum() / positive.sum()
    return weight


def with_prevalence(dataset: TextDataset, prevalence: float) -> TextDataset:
    """The pool subsampled so the positive (harmful) class is `prevalence` of it; test reweighted.

    Pool: every negative is kept and positives are kept by a stable hash of the id until they
    are `prevalence` of the pool, so the learner sees and selects from traffic as rare as real
    moderation traffic. Test: every item is kept and positives are weighted so that they count
    as `prevalence` of the test mass; subsampling the test split too would leave a handful of
    positives (ConvAbuse: ~14) and make PR-AUC mostly noise, while weighting measures the same
    precision a 2 % test would, with every positive's evidence.
    """
    if dataset.task != "binary":
        raise SimulationError("--prevalence needs a binary task (one harmful class)")
    if not 0 < prevalence < 1:
        raise SimulationError(f"prevalence must be in (0, 1), got {prevalence}")
    pool, test, positive = ~dataset.test, dataset.test, dataset.y == 1
    n_negative = int((pool & ~positive).sum())
    want = max(1, round(prevalence / (1 - prevalence) * n_negative))
    positives = sorted(np.flatnonzero(pool & positive), key=lambda i: stable_unit(f"prevalence:{dataset.ids[i]}"))
    if want > len(positives):
        raise SimulationError(
            f"{dataset.name}: pool has {len(positives)} positives, {want} needed for {prevalence:.1%}"
        )
    keep = (pool & ~positive) | test
    keep[positives[:want]] = True
    test_pos = int((test & positive).sum())
    weight = prevalence_weights(dataset.y, test, prevalence)
    notes = [
        *dataset.notes,
        f"prevalence {prevalence:.1%}: pool positives subsampled to {want} of {len(positives)} "
        f"(pool {n_negative + want}); test keeps all {test_pos} positives, each weighted "
        f"{weight[test & positive][0]:.4f} so they are {prevalence:.1%} of the test mass",
    ]
    return replace(dataset, test_weight=weight).take(np.flatnonzero(keep), notes)


# --- the loop -------------------------------------------------------------------------------------


def targets(y: np.ndarray, task: Task, n_classes: int) -> np.ndarray:
    """Head targets (n, L): the positive indicator for binary, one-hot for multiclass."""
    if task == "binary":
        return y[:, None].astype(np.float32)
    return np.eye(n_classes, dtype=np.float32)[y]


def decision_scores(probs: np.ndarray, task: Task) -> np.ndarray:
    """Head output in the form `activelearning.evaluation` takes: P(positive) for binary tasks."""
    return probs[:, 0] if task == "binary" else probs


@dataclass(frozen=True)
class SimulationSetup:
    x_pool: np.ndarray  # (n_pool, d) frozen embeddings
    y_pool: np.ndarray  # (n_pool,) class index: the simulated reviewers' answers
    x_test: np.ndarray
    y_test: np.ndarray
    task: Task
    classes: list[str]
    head: HeadConfig
    dev_fraction: float = 0.2
    min_dev_labels: int = 10  # below this many labels, train without a dev split (fixed epochs)
    mc_samples: int = 20
    minority: int = 0  # class index whose F1 and PR-AUC the curves also track
    groups_pool: np.ndarray | None = None  # (n_pool,) content group: dev splits never split a group
    test_weight: np.ndarray | None = None  # (n_test,) sample weights of the test rows (prevalence)


def grouped_dev_split(
    rows: np.ndarray, groups: np.ndarray | None, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train, dev) rows: whole content groups, in random order, go to dev until it holds `fraction`.

    Duplicates of a dev item never sit in train, so early stopping and temperature are fitted
    on content the head has not memorised.
    """
    shuffled = rng.permutation(rows)
    if groups is None:
        n_dev = round(fraction * len(shuffled))
        return shuffled[n_dev:], shuffled[:n_dev]
    order = list(dict.fromkeys(groups[shuffled].tolist()))
    sizes = Counter(groups[shuffled].tolist())
    dev_groups: set[int] = set()
    taken = 0
    for group in order:
        if taken >= fraction * len(rows):
            break
        dev_groups.add(group)
        taken += sizes[group]
    in_dev = np.isin(groups[shuffled], list(dev_groups))
    return shuffled[~in_dev], shuffled[in_dev]


def fit_round(setup: SimulationSetup, rows: np.ndarray, seed: int, head: HeadConfig | None = None) -> TrainedHead:
    """Train a head on pool `rows`, holding a grouped `dev_fraction` out for early stopping.

    No dev below `min_dev_labels` labels, where a dev set of a few items is noise.
    """
    rng = np.random.default_rng([seed, len(rows)])
    if len(rows) >= setup.min_dev_labels:
        train, dev = grouped_dev_split(rows, setup.groups_pool, setup.dev_fraction, rng)
    else:
        train, dev = rows, rows[:0]
    n_classes = len(setup.classes)
    y_train = targets(setup.y_pool[train], setup.task, n_classes)
    dev_x = setup.x_pool[dev] if len(dev) else None
    dev_y = targets(setup.y_pool[dev], setup.task, n_classes) if len(dev) else None
    labels = [setup.classes[1]] if setup.task == "binary" else setup.classes
    config = replace(head or setup.head, seed=seed)
    return train_head(setup.x_pool[train], y_train, dev_x, dev_y, labels=labels, config=config)


def scores(
    y: np.ndarray, probs: np.ndarray, task: Task, minority: int, weight: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(macro-F1, minority-class F1, minority-class average precision), by scikit-learn, weighted."""
    probs = decision_scores(probs, task)
    pred = (probs >= 0.5).astype(np.int64) if task == "binary" else probs.argmax(axis=1)
    n_classes = 2 if task == "binary" else probs.shape[1]
    f1 = f1_score(y, pred, labels=list(range(n_classes)), average=None, zero_division=0, sample_weight=weight)
    minority_score = (
        probs if task == "binary" and minority == 1 else (1 - probs if task == "binary" else probs[:, minority])
    )
    is_minority = (y == minority).astype(np.int64)
    ap = average_precision_score(is_minority, minority_score, sample_weight=weight) if is_minority.any() else math.nan
    return float(np.mean(f1)), float(f1[minority]), float(ap)


def score_head(setup: SimulationSetup, head: TrainedHead) -> tuple[float, float, float]:
    """(macro-F1, minority F1, minority PR-AUC) on the test split (weighted when reweighted)."""
    return scores(setup.y_test, head.predict_proba(setup.x_test), setup.task, setup.minority, setup.test_weight)


def pool_view(
    setup: SimulationSetup, head: TrainedHead, strategy: Strategy, covered: np.ndarray, seed: int
) -> PoolView:
    """Score the pool with what the strategy needs, and nothing more (MC dropout costs S passes)."""
    needs = strategy.needs
    return PoolView(
        probs=head.predict_proba(setup.x_pool),
        covered=covered,
        mc_probs=head.mc_dropout_proba(setup.x_pool, samples=setup.mc_samples, seed=seed)
        if "mc_probs" in needs
        else None,
        embeddings=setup.x_pool if "embeddings" in needs else None,
        hidden=head.embed(setup.x_pool) if "hidden" in needs else None,
    )


def simulate(
    setup: SimulationSetup, strategy_name: str, *, seed: int, checkpoints: Sequence[int], balanced: bool = False
) -> Iterator[CurvePoint]:
    """One learning curve, lazily: the head is retrained and scored at every checkpoint (a label count).

    The first checkpoint is a random seed set, identical for every strategy at a given seed, so
    curves differ only by what the strategies picked afterwards. Stops early if the pool runs out.
    """
    strategy = get_strategy(strategy_name, balanced=balanced)
    n_pool = len(setup.y_pool)
    rng = np.random.default_rng([seed, 7])
    labelled = np.random.default_rng([seed, 1]).permutation(n_pool)[: checkpoints[0]]
    covered = np.zeros(n_pool, dtype=bool)
    covered[labelled] = True
    head: TrainedHead | None = None
    for checkpoint in checkpoints:
        started = time.perf_counter()
        want = min(checkpoint, n_pool) - len(labelled)
        if want > 0 and head is not None:
            view = pool_view(setup, head, strategy, covered, seed=seed * 100_003 + len(labelled))
            picked = strategy.select(view, want, rng)
            covered[picked] = True
            labelled = np.concatenate([labelled, picked])
        head = fit_round(setup, labelled, seed)
        macro, minority, ap = score_head(setup, head)
        yield CurvePoint(
            strategy.name,
            seed,
            len(labelled),
            macro,
            minority,
            ap,
            int((setup.y_pool[labelled] == setup.minority).sum()),
            time.perf_counter() - started,
        )
        if len(labelled) >= n_pool:
            return


def run_curves(
    setup: SimulationSetup,
    strategy_name: str,
    *,
    seeds: Sequence[int],
    checkpoints: Sequence[int],
    until: Callable[[list[CurvePoint]], bool] | None = None,
    balanced: bool = False,
) -> list[CurvePoint]:
    """Curves for all seeds in lockstep, up to the last checkpoint or until `until(points)` is true.

    `until` sees every point so far after each lockstep round; it bounds run time only and must
    treat every strategy alike (see `stays_reached`).
    """
    runs = [simulate(setup, strategy_name, seed=s, checkpoints=checkpoints, balanced=balanced) for s in seeds]
    points: list[CurvePoint] = []
    while True:
        step = [p for p in (next(run, None) for run in runs) if p is not None]
        if not step:
            return points
        points += step
        if until is not None and until(points):
            return points


def stays_reached(targets_by_metric: dict[Metric, float], *, beyond: float) -> Callable[[list[CurvePoint]], bool]:
    """A stop rule: for every metric the seed-mean curve has reached its target and stayed there
    (`labels_to_stay`), and the curve runs `beyond` times that many labels, so that curves
    averaged over resampled seeds, which cross later, are still measured past their crossing."""

    def done(points: list[CurvePoint]) -> bool:
        last = max(p.labels for p in points)
        for metric, target in targets_by_metric.items():
            needed = labels_to_stay(mean_curve(points, metric), target)
            if needed is None or last < beyond * needed:
                return False
        return True

    return done


@dataclass(frozen=True)
class HeadTrial:
    config: HeadConfig
    dev_score: float  # mean over budgets and seeds of the dev metric


def choose_head(
    setup: SimulationSetup,
    candidates: Sequence[HeadConfig],
    *,
    seeds: Sequence[int],
    budgets: Sequence[int],
    metric: Metric = "macro_f1",
    dev_fraction: float = 0.2,
) -> tuple[HeadConfig, list[HeadTrial]]:
    """The candidate with the best dev score; the test split is never looked at.

    Dev is `dev_fraction` of the pool's content groups (stable hash of the group number), so no
    dev text has a duplicate among the training rows. Each candidate is trained on random
    subsets of the remaining pool of each size in `budgets` (capped at what is there), once per
    seed, and scored on dev with `metric`; the scores are averaged. Small budgets are in the mix
    because the learning curves start with a few dozen labels.
    """
    if setup.groups_pool is None:
        raise SimulationError("choose_head needs the pool's content groups")
    dev_mask = np.asarray([stable_unit(f"head-dev:{g}") < dev_fraction for g in setup.groups_pool])
    dev, rest = np.flatnonzero(dev_mask), np.flatnonzero(~dev_mask)
    if len(np.unique(setup.y_pool[dev])) < 2:
        raise SimulationError("the head-choice dev split holds one class only")
    index = {"macro_f1": 0, "minority_f1": 1, "minority_ap": 2}[metric]
    trials = []
    for config in candidates:
        values = []
        for budget in budgets:
            for seed in seeds:
                rows = np.random.default_rng([seed, budget, 11]).permutation(rest)[: min(budget, len(rest))]
                head = fit_round(setup, rows, seed, config)
                probs = head.predict_proba(setup.x_pool[dev])
                values.append(scores(setup.y_pool[dev], probs, setup.task, setup.minority)[index])
        trials.append(HeadTrial(config, float(np.nanmean(values))))
    best = max(trials, key=lambda t: t.dev_score)
    return best.config, trials


def full_data_scores(setup: SimulationSetup, seeds: Sequence[int]) -> tuple[float, float, float]:
    """Mean (macro-F1, minority F1, minority PR-AUC) over seeds of a head trained on the whole pool."""
    every = np.arange(len(setup.y_pool))
    runs = np.asarray([score_head(setup, fit_round(setup, every, seed)) for seed in seeds])
    return float(runs[:, 0].mean()), float(runs[:, 1].mean()), float(runs[:, 2].mean())


def geometric_checkpoints(start: int, stop: int, factor: float = 1.25) -> list[int]:
    """start, ~start·factor, … up to and including `stop` (distinct integers)."""
    if start < 1 or stop < start:
        raise SimulationError(f"invalid checkpoint range {start}..{stop}")
    values = [start]
    while values[-1] < stop:
        values.append(min(stop, max(values[-1] + 1, round(values[-1] * factor))))
    return values


# --- strategies that coincide -----------------------------------------------------------------------


def distinct_strategies(names: Sequence[str], task: Task) -> dict[str, list[str]]:
    """Run name → the requested names it stands for, in request order.

    For a binary task (one sigmoid) least-confidence, margin and entropy are all decreasing in
    max(p, 1 − p), so they rank any pool identically and pick the same items: they run once as
    `uncertainty` (run with entropy's scores), the balanced variants likewise. Multiclass heads
    have one sigmoid per class, where the three differ, so they run apart.
    """
    runs: dict[str, list[str]] = {}
    for name in names:
        base, suffix = (name.removesuffix("+balanced"), "+balanced") if name.endswith("+balanced") else (name, "")
        run = UNCERTAINTY + suffix if task == "binary" and base in BINARY_UNCERTAINTY else name
        runs.setdefault(run, []).append(name)
    return runs


def strategy_to_run(run_name: str) -> tuple[str, bool]:
    """(registered strategy, balanced) behind a run name from `distinct_strategies`."""
    balanced = run_name.endswith("+balanced")
    base = run_name.removesuffix("+balanced")
    return ("entropy" if base == UNCERTAINTY else base), balanced


def class_counts(dataset: TextDataset) -> dict[str, Any]:
    pool, test = ~dataset.test, dataset.test
    return {
        "pool": {c: int((dataset.y[pool] == i).sum()) for i, c in enumerate(dataset.classes)},
        "test": {c: int((dataset.y[test] == i).sum()) for i, c in enumerate(dataset.classes)},
    }
