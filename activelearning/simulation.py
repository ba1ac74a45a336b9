"""Active-learning simulation: reviewers are simulated by a dataset's gold labels.

A `TextDataset` holds texts with one gold class each and a held-out test split that no strategy
ever sees. `simulate` runs rounds of select → label (reveal gold) → retrain on the labelled pool
and evaluates every round on the test split, giving a learning curve per strategy and seed.
`labels_to_reach` reads off how many labels a curve needs to reach a target macro-F1.

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
from sklearn.metrics import f1_score

from activelearning.evaluation import Task, macro_f1
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

DatasetFormat = Literal["csv", "jsonl", "toxic-spans", "convabuse"]
# Label spellings that mean "the harmful class" when a generic file has exactly two labels.
_POSITIVE_SPELLINGS = ("1", "true", "yes", "toxic", "abusive", "hateful", "offensive", "harmful", "spam", "positive")


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
    notes: list[str] = field(default_factory=list)  # what was dropped or subsampled, for the report

    @property
    def head_labels(self) -> list[str]:
        """One sigmoid per label: the positive class for binary data, every class for multiclass."""
        return [self.classes[1]] if self.task == "binary" else list(self.classes)

    def minority_class(self, rows: np.ndarray | None = None) -> int:
        counts = np.bincount(self.y if rows is None else self.y[rows], minlength=len(self.classes))
        return int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))


def convabuse_gold(record: DatasetRecord) -> str | None:
    # Binarise each annotator's first answer before the vote: "ambiguous" is not a verdict of abuse.
    votes = [replace(a, label="abusive" if a.label == "abusive" else "not_abusive") for a in record.annotations]
    return majority_label(votes)


def _stable_unit(key: str) -> float:
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


def dataset_from_records(
    records: Iterable[DatasetRecord],
    *,
    name: str,
    gold: Callable[[DatasetRecord], str | None] = lambda r: r.label,
    positive: str | None = None,
    test_fraction: float = 0.2,
) -> TextDataset:
    """Gold-labelled texts with a held-out test split.

    The test split is the file's own ("split" metadata == "test", as in ConvAbuse) when there is
    one, else a stable hash of the item id below `test_fraction` — the same items every run.
    Items without a gold label (annotator ties, blank label cells) are dropped and counted.
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
    test = [
        r.metadata.get("split") == "test" if own_split else _stable_unit(f"{name}:{r.external_id}") < test_fraction
        for r, _ in kept
    ]
    notes = [f"{dropped} items without a gold label dropped"] if dropped else []
    notes.append("test split: the dataset's own" if own_split else f"test split: stable hash, {test_fraction:.0%}")
    return TextDataset(
        name=name,
        texts=[r.text for r, _ in kept],
        ids=[r.external_id for r, _ in kept],
        y=np.asarray([index[label] for _, label in kept], dtype=np.int64),
        classes=classes,
        task=task,
        test=np.asarray(test, dtype=bool),
        notes=notes,
    )


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
            order = sorted(rows, key=lambda i: _stable_unit(f"subsample:{dataset.ids[i]}"))
            rows = np.asarray(order[:limit])
            notes.append(f"{label} subsampled to {limit} of {int(part.sum())} items")
        keep[rows] = True
    rows = np.flatnonzero(keep)
    return replace(
        dataset,
        texts=[dataset.texts[i] for i in rows],
        ids=[dataset.ids[i] for i in rows],
        y=dataset.y[rows],
        test=dataset.test[rows],
        notes=notes,
    )


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
class CurvePoint:
    strategy: str
    seed: int
    labels: int
    macro_f1: float
    minority_f1: float
    minority_labelled: int  # how many labelled items belong to the minority class
    seconds: float  # wall time of this round (select + train + evaluate)


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
    minority: int = 0  # class index whose F1 the curves also track


def _split_dev(
    labelled: np.ndarray, fraction: float, minimum: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(train, dev) rows; no dev below `minimum` labels, where a dev set of a few items is noise."""
    shuffled = rng.permutation(labelled)
    n_dev = round(fraction * len(shuffled)) if len(shuffled) >= minimum else 0
    return shuffled[n_dev:], shuffled[:n_dev]


def fit_round(setup: SimulationSetup, labelled: np.ndarray, seed: int) -> TrainedHead:
    """Train a head on the labelled pool rows, holding `dev_fraction` of them out for early stopping."""
    rng = np.random.default_rng([seed, len(labelled)])
    train, dev = _split_dev(labelled, setup.dev_fraction, setup.min_dev_labels, rng)
    n_classes = len(setup.classes)
    y_train = targets(setup.y_pool[train], setup.task, n_classes)
    dev_x = setup.x_pool[dev] if len(dev) else None
    dev_y = targets(setup.y_pool[dev], setup.task, n_classes) if len(dev) else None
    labels = [setup.classes[1]] if setup.task == "binary" else setup.classes
    return train_head(setup.x_pool[train], y_train, dev_x, dev_y, labels=labels, config=replace(setup.head, seed=seed))


def score_head(setup: SimulationSetup, head: TrainedHead) -> tuple[float, float]:
    """(macro-F1, minority-class F1) on the test split, both by scikit-learn."""
    probs = decision_scores(head.predict_proba(setup.x_test), setup.task)
    pred = (probs >= 0.5).astype(np.int64) if setup.task == "binary" else probs.argmax(axis=1)
    minority = f1_score(setup.y_test, pred, labels=[setup.minority], average=None, zero_division=0)[0]
    return macro_f1(setup.y_test, probs, setup.task), float(minority)


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
        macro, minority = score_head(setup, head)
        yield CurvePoint(
            strategy.name,
            seed,
            len(labelled),
            macro,
            minority,
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
    target: float | None = None,
    rounds_after_target: int = 2,
    balanced: bool = False,
) -> list[CurvePoint]:
    """Curves for all seeds in lockstep, stopping `rounds_after_target` checkpoints after the
    seed-averaged macro-F1 first reaches `target` (the only crossing `labels_to_reach` reads).
    """
    runs = [simulate(setup, strategy_name, seed=s, checkpoints=checkpoints, balanced=balanced) for s in seeds]
    points: list[CurvePoint] = []
    rounds_left: int | None = None
    while rounds_left is None or rounds_left > 0:
        step = [p for p in (next(run, None) for run in runs) if p is not None]
        if not step:
            break
        points += step
        if rounds_left is not None:
            rounds_left -= 1
        elif target is not None and np.mean([p.macro_f1 for p in step]) >= target:
            rounds_left = rounds_after_target
    return points


def full_data_scores(setup: SimulationSetup, seeds: Sequence[int]) -> tuple[float, float]:
    """Mean (macro-F1, minority F1) over seeds of a head trained on the whole labelled pool."""
    every = np.arange(len(setup.y_pool))
    scores = [score_head(setup, fit_round(setup, every, seed)) for seed in seeds]
    return float(np.mean([s[0] for s in scores])), float(np.mean([s[1] for s in scores]))


def geometric_checkpoints(start: int, stop: int, factor: float = 1.25) -> list[int]:
    """start, ~start·factor, … up to and including `stop` (distinct integers)."""
    if start < 1 or stop < start:
        raise SimulationError(f"invalid checkpoint range {start}..{stop}")
    values = [start]
    while values[-1] < stop:
        values.append(min(stop, max(values[-1] + 1, round(values[-1] * factor))))
    return values


def mean_curve(points: Iterable[CurvePoint], metric: str = "macro_f1") -> list[tuple[int, float]]:
    """(labels, mean metric over seeds) per checkpoint, sorted by labels."""
    by_labels: dict[int, list[float]] = {}
    for p in points:
        by_labels.setdefault(p.labels, []).append(getattr(p, metric))
    return [(labels, float(np.mean(values))) for labels, values in sorted(by_labels.items())]


def labels_to_reach(curve: Sequence[tuple[int, float]], target: float) -> float | None:
    """Labels at which the curve first reaches `target`, interpolated linearly between checkpoints.

    None when it never does within the curve.
    """
    previous: tuple[int, float] | None = None
    for labels, value in curve:
        if value >= target:
            if previous is None or math.isclose(value, previous[1]):
                return float(labels)
            fraction = (target - previous[1]) / (value - previous[1])
            return previous[0] + fraction * (labels - previous[0])
        previous = (labels, value)
    return None


def class_counts(dataset: TextDataset) -> dict[str, Any]:
    pool, test = ~dataset.test, dataset.test
    return {
        "pool": {c: int((dataset.y[pool] == i).sum()) for i, c in enumerate(dataset.classes)},
        "test": {c: int((dataset.y[test] == i).sum()) for i, c in enumerate(dataset.classes)},
    }
