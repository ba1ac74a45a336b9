"""Numeric helpers the Django side needs and the numeric core does not (yet) offer. numpy/sklearn only.

- `split_codes`: the stable train/dev/test split of gold by a hash of the item's upstream identity;
- `paired_bootstrap`: champion vs challenger on the *same* held-out items (the core's
  `bootstrap_intervals` resamples one model at a time, which cannot give the CI of a difference);
- `pr_curves`: precision–recall points per class for charts;
- `threshold_for_precision` / `threshold_for_recall`: routing thresholds for a target.

Macro-F1 here is computed from confusion counts with numpy so a thousand paired resamples of tens
of thousands of items take well under a second; it equals sklearn's `f1_score(average="macro",
labels=range(C), zero_division=0)` (a test checks this).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from activelearning.evaluation import Task

TRAIN, DEV, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "dev", "test")


def split_codes(keys: Sequence[str], *, salt: str, dev: float, test: float) -> np.ndarray:
    """(n,) int8 split per item: TRAIN, DEV or TEST, from sha256(salt + item key) as a unit number.

    The key is the item's upstream identity ("source\x1fexternal_id"), not a database id, so the
    split is the same across runs, processes, machines and databases: an item is in the test split
    for every model that uses the same salt, and no model ever trains on another's test items.
    """
    out = np.empty(len(keys), dtype=np.int8)
    prefix = salt.encode("utf-8")
    for row, key in enumerate(keys):
        unit = int.from_bytes(hashlib.sha256(prefix + key.encode("utf-8")).digest()[:8], "big") / 2**64
        out[row] = TEST if unit < test else DEV if unit < test + dev else TRAIN
    return out


def predictions(probs: np.ndarray, task: Task, threshold: float = 0.5) -> np.ndarray:
    """Predicted class index (n,) for binary/multiclass; indicator (n, C) for multilabel."""
    probs = np.asarray(probs, dtype=np.float64)
    if task == "binary":
        return (probs.reshape(len(probs)) >= threshold).astype(np.int64)
    if task == "multiclass":
        return probs.argmax(axis=1)
    return (probs >= threshold).astype(np.int64)


def _class_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros(np.shape(tp), dtype=np.float64), where=denominator > 0)


def macro_f1_batch(
    y: np.ndarray, pred: np.ndarray, n_classes: int, rows: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """Macro-F1 of each resample; `rows` is (B, n) indices into y/pred. Shape (B,).

    `weights` (n,) weight each item's confusion count (inverse sampling propensities).
    """
    if y.ndim == 2:  # multilabel: mean over labels of binary F1 of the positive class
        yt, yp = y[rows].astype(bool), pred[rows].astype(bool)  # (B, n, C)
        w = np.ones((*rows.shape, 1)) if weights is None else weights[rows][:, :, None]
        tp, fp, fn = (w * (yt & yp)).sum(1), (w * (~yt & yp)).sum(1), (w * (yt & ~yp)).sum(1)
        return _class_f1(tp, fp, fn).mean(axis=1)
    codes = y[rows] * n_classes + pred[rows]  # (B, n)
    offsets = np.arange(len(rows))[:, None] * n_classes * n_classes
    counts = np.bincount(
        (codes + offsets).ravel(),
        weights=None if weights is None else weights[rows].ravel(),
        minlength=len(rows) * n_classes * n_classes,
    )
    confusion = counts.reshape(len(rows), n_classes, n_classes)  # [b, gold, predicted]
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    return _class_f1(tp, confusion.sum(1) - tp, confusion.sum(2) - tp).mean(axis=1)


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int, weights: np.ndarray | None = None) -> float:
    return float(macro_f1_batch(y, pred, n_classes, np.arange(len(y))[None, :], weights)[0])


@dataclass(frozen=True)
class PairedDelta:
    """Challenger minus champion, on the same items: point estimate and percentile interval."""

    champion: float
    challenger: float
    delta: float
    low: float
    high: float
    n: int
    n_bootstrap: int


def paired_bootstrap(
    y: np.ndarray,
    pred_champion: np.ndarray,
    pred_challenger: np.ndarray,
    n_classes: int,
    *,
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
    batch: int = 100,
    weights: np.ndarray | None = None,
) -> PairedDelta:
    """Percentile bootstrap of macro-F1(challenger) − macro-F1(champion), items resampled together.

    Pairing removes the variance the two models share (hard items are hard for both), so the
    interval of the difference is much narrower than two separate intervals would suggest.
    `weights` (inverse sampling propensities) travel with their items through the resamples.
    """
    y = np.asarray(y)
    n = len(y)
    if n == 0:
        return PairedDelta(math.nan, math.nan, math.nan, math.nan, math.nan, 0, 0)
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, n_bootstrap, batch):
        rows = rng.integers(0, n, size=(min(batch, n_bootstrap - start), n))
        deltas.append(
            macro_f1_batch(y, pred_challenger, n_classes, rows, weights)
            - macro_f1_batch(y, pred_champion, n_classes, rows, weights)
        )
    tail = (1 - confidence_level) / 2 * 100
    low, high = np.percentile(np.concatenate(deltas), [tail, 100 - tail])
    champion = macro_f1(y, pred_champion, n_classes, weights)
    challenger = macro_f1(y, pred_challenger, n_classes, weights)
    return PairedDelta(champion, challenger, challenger - champion, float(low), float(high), n, n_bootstrap)


def pr_curves(indicator: np.ndarray, scores: np.ndarray, names: Sequence[str], *, max_points: int = 60) -> dict:
    """{class: [[recall, precision], ...]} per class with positives and negatives, thinned for charts."""
    from sklearn.metrics import precision_recall_curve  # here, not at the top: web processes import this module

    curves: dict[str, list[list[float]]] = {}
    for j, name in enumerate(names):
        truth = indicator[:, j]
        if not 0 < truth.sum() < len(truth):
            continue
        precision, recall, _ = precision_recall_curve(truth, scores[:, j])
        keep = np.unique(np.linspace(0, len(recall) - 1, min(max_points, len(recall))).round().astype(int))
        curves[name] = [[round(float(recall[i]), 4), round(float(precision[i]), 4)] for i in keep]
    return curves


@dataclass(frozen=True)
class ThresholdPoint:
    threshold: float
    precision: float  # of the items on the automatic side
    recall: float  # of positives: caught (action side) or still sent on (clear side)
    share: float  # of all items that the rule would automate
    support: int  # items on the automatic side


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)


def threshold_for_precision(
    scores: np.ndarray,
    positive: np.ndarray,
    target: float,
    *,
    min_support: int = 5,
    weights: np.ndarray | None = None,
) -> ThresholdPoint | None:
    """Lowest t with precision(score ≥ t) ≥ target over at least `min_support` items; None if none.

    Lowest, because every lower threshold automates more: this is the most automation the target
    allows. With `weights` (inverse sampling propensities), precision, recall and share are
    weighted; `support` stays a count of items.
    """
    order = np.argsort(-scores, kind="stable")
    s, p = scores[order], positive[order].astype(np.int64)
    w = _weights(weights, len(scores))[order]
    true_pos, mass = np.cumsum(w * p), np.cumsum(w)
    count = np.arange(1, len(s) + 1)
    # Only cut between distinct scores: items with equal scores fall on the same side.
    last_of_value = np.r_[s[1:] != s[:-1], True]
    ok = last_of_value & (count >= min_support) & (true_pos / mass >= target)
    if not ok.any():
        return None
    i = int(np.flatnonzero(ok)[-1])
    total_pos = float((w * p).sum()) or 1.0
    return ThresholdPoint(
        float(s[i]),
        float(true_pos[i] / mass[i]),
        float(true_pos[i] / total_pos),
        float(mass[i] / mass[-1]),
        int(count[i]),
    )


def threshold_for_recall(
    scores: np.ndarray,
    positive: np.ndarray,
    target: float,
    *,
    min_support: int = 5,
    weights: np.ndarray | None = None,
) -> ThresholdPoint | None:
    """Highest t such that positives with score > t are ≥ target of all positives (auto-clear below t).

    `precision` is that of clearing (share of negatives among cleared items); `recall` the share of
    positives that still go to people or enforcement. None without positives or a big enough side.
    `weights` as in `threshold_for_precision`.
    """
    order = np.argsort(scores, kind="stable")
    s, p = scores[order], positive[order].astype(np.int64)
    w = _weights(weights, len(scores))[order]
    total_pos = float((w * p).sum())
    if total_pos == 0:
        return None
    missed, mass = np.cumsum(w * p), np.cumsum(w)  # positives at or below s[i]
    count = np.arange(1, len(s) + 1)
    last_of_value = np.r_[s[1:] != s[:-1], True]
    ok = last_of_value & (count >= min_support) & ((total_pos - missed) / total_pos >= target)
    if not ok.any():
        return None
    i = int(np.flatnonzero(ok)[-1])
    return ThresholdPoint(
        float(s[i]),
        float(1 - missed[i] / mass[i]),
        float((total_pos - missed[i]) / total_pos),
        float(mass[i] / mass[-1]),
        int(count[i]),
    )


def finite_or_none(value: object) -> object:
    """JSON for Postgres: NaN and ±inf become null, recursively through dicts, lists and tuples."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    if isinstance(value, np.floating | np.integer):
        return finite_or_none(value.item())
    return value
