"""K-fold out-of-fold probabilities: every row is scored by a head that never saw it. No Django.

Confident learning compares each label with a model's probability of it; a model fitted to those
labels has learnt them, so it mostly agrees with them, wrong ones included. Out-of-fold scoring
(Northcutt et al., "Confident Learning", JAIR 2021, section 6) trains k heads, each on k-1 folds,
and scores the remaining fold with it.

Folds are *grouped*: rows sharing a group key (equal or near-duplicate text, given by the caller
from `reviewapp.content_keys`) fall in the same fold, so a duplicate of an item cannot teach its
fold's head the item's own label. They are *stratified* by the label of each group's first row, so
every fold sees every class, and deterministic for a seed.
Each head early-stops and fits its temperature on a dev part of its own training folds (a grouped,
seeded share of groups); the scored fold is neither trained on nor used for early stopping.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from activelearning.head_inputs import Bags, Features, HeadConfig

MIN_FOLDS = 2
MAX_FOLDS = 20


class OutOfFoldError(ValueError):
    """Data that cannot be scored out of fold (too few groups, a fold whose training part has one class)."""


@dataclass(frozen=True)
class FoldPlan:
    """Which fold each row is scored in, and which rows serve as dev when their fold trains."""

    folds: np.ndarray  # (n,) int64 in [0, k)
    dev: np.ndarray  # (n,) bool
    k: int
    seed: int
    n_groups: int
    sha256: str  # over (item id, fold, dev) of every row: two runs with this hash scored alike

    def fit_rows(self, fold: int) -> np.ndarray:
        """Rows the head of `fold` is trained or early-stopped on: every row outside the fold."""
        return np.flatnonzero(self.folds != fold)


def _unit_hash(*parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def fold_plan(
    *,
    item_ids: Sequence[int],
    groups: Sequence[str],
    strata: Sequence[int],
    k: int,
    seed: int,
    dev_fraction: float,
) -> FoldPlan:
    """Assign rows to k grouped, class-stratified folds, deterministically for `seed`.

    Within each stratum (the class of a group's first row), groups are taken largest first, ties
    in seeded-hash order, and each goes to the fold holding the fewest rows of that stratum (then
    the fewest rows): fold sizes and class mixes come out even however large some groups are.
    """
    if not MIN_FOLDS <= k <= MAX_FOLDS:
        raise OutOfFoldError(f"k must be between {MIN_FOLDS} and {MAX_FOLDS}, not {k}")
    if not len(item_ids) == len(groups) == len(strata):
        raise OutOfFoldError("item ids, groups and strata must have one entry per row")
    first_stratum: dict[str, int] = {}
    for group, stratum in zip(groups, strata, strict=True):
        first_stratum.setdefault(group, int(stratum))
    if len(first_stratum) < k:
        raise OutOfFoldError(f"{len(first_stratum)} distinct texts cannot fill {k} folds")
    size = Counter(groups)
    ordered = sorted(first_stratum, key=lambda g: (first_stratum[g], -size[g], _unit_hash(seed, "fold", g)))
    rows_in = np.zeros(k, dtype=np.int64)
    stratum_rows_in: dict[int, np.ndarray] = {}
    fold_of: dict[str, int] = {}
    for group in ordered:
        in_stratum = stratum_rows_in.setdefault(first_stratum[group], np.zeros(k, dtype=np.int64))
        fold = min(range(k), key=lambda f: (in_stratum[f], rows_in[f], f))
        fold_of[group] = fold
        in_stratum[fold] += size[group]
        rows_in[fold] += size[group]
    dev_of = {group: _unit_hash(seed, "dev", group) < dev_fraction for group in ordered}
    folds = np.asarray([fold_of[g] for g in groups], dtype=np.int64)
    dev = np.asarray([dev_of[g] for g in groups], dtype=bool)
    digest = hashlib.sha256(f"k={k} seed={seed} dev={dev_fraction}\n".encode())
    for item_id, fold, is_dev in zip(item_ids, folds, dev, strict=True):
        digest.update(f"{int(item_id)}:{int(fold)}:{int(is_dev)}\n".encode())
    return FoldPlan(folds, dev, k, seed, len(ordered), digest.hexdigest())


def item_set_sha256(item_ids: Sequence[int] | np.ndarray) -> str:
    """sha256 over sorted item ids, one per line: names a training set without listing it."""
    return hashlib.sha256("".join(f"{int(i)}\n" for i in sorted(int(i) for i in item_ids)).encode()).hexdigest()


@dataclass
class FoldResult:
    fold: int
    n_scored: int
    n_train: int
    n_dev: int
    fit_sha256: str  # item_set_sha256 of the rows this fold's head trained or early-stopped on
    epochs: int
    best_epoch: int
    temperature: list[float] = field(default_factory=list)
    seconds: float = 0.0


def _take(features: Features, rows: np.ndarray) -> Features:
    return features.take(rows) if isinstance(features, Bags) else features[rows]


def out_of_fold_probabilities(
    features: Features,
    y_head: np.ndarray,
    strata: np.ndarray,
    plan: FoldPlan,
    *,
    item_ids: np.ndarray,
    labels: Sequence[str],
    config: HeadConfig,
) -> tuple[np.ndarray, list[FoldResult]]:
    """Calibrated head probabilities (n, L), each row from the head of its own fold, and per-fold facts.

    Raises OutOfFoldError when a fold's training part holds a single class (the head would learn
    nothing to score with).
    """
    from activelearning.heads import train_head  # torch: loaded by the process that trains

    probabilities = np.full((len(y_head), len(labels)), np.nan)
    results = []
    for fold in range(plan.k):
        started = time.perf_counter()
        fit = plan.fit_rows(fold)
        train, dev = fit[~plan.dev[fit]], fit[plan.dev[fit]]
        if len(np.unique(strata[train])) < 2:
            raise OutOfFoldError(f"fold {fold}: the training part holds one class only; use fewer folds")
        head = train_head(
            _take(features, train),
            y_head[train],
            _take(features, dev),
            y_head[dev],
            labels=tuple(labels),
            config=config,
        )
        scored = np.flatnonzero(plan.folds == fold)
        probabilities[scored] = head.predict_proba(_take(features, scored))
        results.append(
            FoldResult(
                fold=fold,
                n_scored=len(scored),
                n_train=len(train),
                n_dev=len(dev),
                fit_sha256=item_set_sha256(item_ids[fit]),
                epochs=head.history.epochs_run,
                best_epoch=head.history.best_epoch,
                temperature=[round(float(t), 4) for t in head.temperature],
                seconds=round(time.perf_counter() - started, 3),
            )
        )
    return probabilities, results
