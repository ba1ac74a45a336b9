"""Held-out figures per stratum of gold: how an item reached people decides what it can stand for.

Gold carries the route that sent its item to people (the task reason) and the probability it was
sent (`sampling_propensity`). Routes fall into strata that must not be pooled:

- **traffic** — `low_confidence` (every item in the review band goes to people, propensity 1) and
  `audit_sample` (automatic decisions sampled into audit at the rule's rate). Together they are a
  probability sample of everything the model decides, so each item is weighted by
  1 / propensity (Horvitz–Thompson): the weighted figure estimates the model on traffic. Unequal
  weights cost precision; Kish's effective sample size n_eff = (Σw)² / Σw² says how much.
- **selected** — `active_learning`, `relabel`, `label_error`, `appeal`: items chosen *because* they
  are hard or contested. Unweighted; they show the model on hard items, never on traffic.
- **imported** — `backfill`: a dataset someone imported for labelling. Unweighted; it represents
  that dataset, not this deployment's traffic.
- **honeypot** — planted known-answer items that check reviewers. Their own stratum, excluded from
  the others: they are curated by people (often clear-cut cases), so they are neither traffic nor
  the model's hard items, and mixing them into either would bias it.
- **unknown** — gold without a recorded route (created outside a review task).

Every stratum's figures come with a percentile bootstrap over items; in the traffic stratum each
resampled item keeps its weight, so the interval is that of the weighted (Horvitz–Thompson)
estimate. Plain numpy; scikit-learn only inside the functions that rank (web processes import
this module for `figure_label`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TRAFFIC, SELECTED, IMPORTED, HONEYPOT, UNKNOWN = "traffic", "selected", "imported", "honeypot", "unknown"
STRATA = (TRAFFIC, SELECTED, IMPORTED, HONEYPOT, UNKNOWN)
ROUTE_STRATUM = {
    "low_confidence": TRAFFIC,
    "audit_sample": TRAFFIC,
    "active_learning": SELECTED,
    "relabel": SELECTED,
    "label_error": SELECTED,
    "appeal": SELECTED,
    "backfill": IMPORTED,
    "honeypot": HONEYPOT,
}
# The stratum a decision (promotion, thresholds) is taken on: the first with enough items.
# Traffic first because it is what the model will meet; hard items last because they flatter
# no one but also represent no one.
DECISION_ORDER = (TRAFFIC, IMPORTED, SELECTED)
ALL = "all"  # every held-out stratum pooled, unweighted (the figure before strata were kept apart)


def stratum_of(route: str | None) -> str:
    return ROUTE_STRATUM.get(route or "", UNKNOWN)


def strata_of(routes: Sequence[str | None]) -> np.ndarray:
    return np.asarray([stratum_of(r) for r in routes], dtype=object)


def stratum_weights(stratum: str, propensity: np.ndarray) -> np.ndarray:
    """1 / propensity in the traffic stratum (a propensity outside (0, 1] is an error), else 1."""
    propensity = np.asarray(propensity, dtype=np.float64)
    if stratum != TRAFFIC:
        return np.ones(len(propensity))
    if len(propensity) and not ((propensity > 0) & (propensity <= 1)).all():
        raise ValueError("sampling propensities must lie in (0, 1] to weight the traffic stratum")
    return 1.0 / propensity


def effective_n(weights: np.ndarray) -> float:
    """Kish's effective sample size (Σw)² / Σw²; equals n for equal weights."""
    total = float(np.sum(weights))
    squares = float(np.sum(np.square(weights)))
    return total * total / squares if squares > 0 else 0.0


def decision_stratum(sizes: Mapping[str, int], minimum: int) -> str | None:
    """The stratum a decision is taken on: the first of DECISION_ORDER with at least `minimum` items."""
    return next((s for s in DECISION_ORDER if sizes.get(s, 0) >= minimum), None)


def figure_label(split: str, stratum: str, *, n: int, n_eff: float | None = None, weighted: bool = False) -> str:
    """Where a figure comes from, in words: "test · traffic (weighted, n=412, n_eff=97.3)"."""
    if stratum == ALL:
        return f"{split} · all strata pooled (unweighted, n={n})"
    if weighted:
        return f"{split} · {stratum} (weighted, n={n}, n_eff={n_eff:.1f})"
    return f"{split} · {stratum} (unweighted, n={n})"


# --- weighted classification figures -------------------------------------------------------------


@dataclass(frozen=True)
class Shaped:
    """Gold and scores in one form for every task: (n, C) indicators, (n, C) scores, (n, C) predictions."""

    indicator: np.ndarray
    scores: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray  # (m,) calibration confidences (m = n, or n·C pooled for multilabel)
    outcome: np.ndarray  # (m,) observed 0/1 for each confidence
    calibration_rows: np.ndarray  # (m,) item row of each confidence, to carry weights


def shape(y: np.ndarray, probs: np.ndarray, task: str, n_classes: int, threshold: float = 0.5) -> Shaped:
    """The task's arrays (as `activelearning.evaluation` takes them) in the common form."""
    y, probs = np.asarray(y), np.asarray(probs, dtype=np.float64)
    n = len(y)
    if task == "binary":
        p = probs.reshape(n)
        indicator = np.eye(2, dtype=bool)[y.astype(np.int64)]
        predicted = np.eye(2, dtype=bool)[(p >= threshold).astype(np.int64)]
        return Shaped(indicator, np.column_stack([1 - p, p]), predicted, p, y.astype(np.float64), np.arange(n))
    if task == "multiclass":
        top = probs.argmax(axis=1)
        indicator = np.eye(n_classes, dtype=bool)[y.astype(np.int64)]
        correct = (top == y).astype(np.float64)
        return Shaped(indicator, probs, np.eye(n_classes, dtype=bool)[top], probs.max(axis=1), correct, np.arange(n))
    indicator = y.astype(bool)
    rows = np.repeat(np.arange(n), n_classes)
    return Shaped(indicator, probs, probs >= threshold, probs.ravel(), y.ravel().astype(np.float64), rows)


def _safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b > 0)


def class_counts(shaped: Shaped, weights: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted (tp, fp, fn) per class for each resample; `rows` is (B, n). Each (B, C)."""
    w = weights[rows][:, :, None]
    gold, pred = shaped.indicator[rows], shaped.predicted[rows]
    return (w * (gold & pred)).sum(1), (w * (~gold & pred)).sum(1), (w * (gold & ~pred)).sum(1)


def prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 (0 where undefined, as scikit-learn's zero_division=0)."""
    return _safe_divide(tp, tp + fp), _safe_divide(tp, tp + fn), _safe_divide(2 * tp, 2 * tp + fp + fn)


def weighted_ece(shaped: Shaped, weights: np.ndarray, rows: np.ndarray | None = None, n_bins: int = 10) -> float:
    """ECE over equal-width bins (right-closed, as sklearn's calibration_curve) with item weights."""
    calibration = np.arange(len(shaped.confidence)) if rows is None else _calibration_take(shaped, rows)
    confidence, outcome = shaped.confidence[calibration], shaped.outcome[calibration]
    w = weights[shaped.calibration_rows[calibration]]
    total = w.sum()
    if total <= 0:
        return math.nan
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges[1:-1], confidence, side="right"), 0, n_bins - 1)
    mass = np.bincount(which, weights=w, minlength=n_bins)
    conf = np.bincount(which, weights=w * confidence, minlength=n_bins)
    seen = np.bincount(which, weights=w * outcome, minlength=n_bins)
    return float(np.abs(seen - conf)[mass > 0].sum() / total)


def _calibration_take(shaped: Shaped, rows: np.ndarray) -> np.ndarray:
    """Calibration entries of the resampled items `rows` (n,), in order."""
    per_item = len(shaped.confidence) // max(len(shaped.indicator), 1)
    return (rows[:, None] * per_item + np.arange(per_item)[None, :]).ravel()


def weighted_pr_auc(shaped: Shaped, weights: np.ndarray, rows: np.ndarray | None = None) -> float:
    """Macro average precision over classes with positives and negatives (sklearn, sample_weight)."""
    from sklearn.metrics import average_precision_score

    rows = np.arange(len(weights)) if rows is None else rows
    gold, scores, w = shaped.indicator[rows], shaped.scores[rows], weights[rows]
    values = [
        average_precision_score(gold[:, j], scores[:, j], sample_weight=w)
        for j in range(gold.shape[1])
        if 0 < gold[:, j].sum() < len(gold)
    ]
    return float(np.mean(values)) if values else math.nan


def stratum_report(
    y: np.ndarray,
    probs: np.ndarray,
    *,
    task: str,
    classes: Sequence[str],
    weights: np.ndarray,
    n_bootstrap: int,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> dict[str, Any]:
    """Headline figures of one stratum, weighted by `weights`, with percentile bootstrap intervals.

    Keys: n, n_eff, total_weight, macro_f1 / macro_precision / macro_recall / macro_pr_auc / ece,
    per_class [{name, support, weighted_support, precision, recall, f1}], intervals
    {metric: {point, low, high}} and n_bootstrap. With all weights 1 these equal scikit-learn's
    unweighted figures.
    """
    weights = np.asarray(weights, dtype=np.float64)
    shaped = shape(y, probs, task, len(classes))
    every = np.arange(len(weights))[None, :]
    precision, recall, f1 = (m[0] for m in prf(*class_counts(shaped, weights, every)))
    point = {
        "macro_f1": float(f1.mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_pr_auc": weighted_pr_auc(shaped, weights),
        "ece": weighted_ece(shaped, weights),
    }
    report: dict[str, Any] = {
        "n": len(weights),
        "n_eff": effective_n(weights),
        "total_weight": float(weights.sum()),
        **point,
        "per_class": [
            {
                "name": name,
                "support": int(shaped.indicator[:, j].sum()),
                "weighted_support": float(weights[shaped.indicator[:, j]].sum()),
                "precision": float(precision[j]),
                "recall": float(recall[j]),
                "f1": float(f1[j]),
            }
            for j, name in enumerate(classes)
        ],
        "n_bootstrap": n_bootstrap if len(weights) >= 2 else 0,
        "intervals": {},
    }
    if report["n_bootstrap"]:
        report["intervals"] = _bootstrap(shaped, weights, point, n_bootstrap, seed, confidence_level)
    return report


def _bootstrap(
    shaped: Shaped, weights: np.ndarray, point: dict[str, float], n_bootstrap: int, seed: int, level: float
) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    n = len(weights)
    samples: dict[str, list[float]] = {key: [] for key in point}
    for start in range(0, n_bootstrap, 50):
        rows = rng.integers(0, n, size=(min(50, n_bootstrap - start), n))
        precision, recall, f1 = prf(*class_counts(shaped, weights, rows))
        samples["macro_f1"] += f1.mean(axis=1).tolist()
        samples["macro_precision"] += precision.mean(axis=1).tolist()
        samples["macro_recall"] += recall.mean(axis=1).tolist()
        for resample in rows:
            samples["macro_pr_auc"].append(weighted_pr_auc(shaped, weights, resample))
            samples["ece"].append(weighted_ece(shaped, weights, resample))
    tail = (1 - level) / 2 * 100
    out = {}
    for key, values in samples.items():
        finite = np.asarray([v for v in values if not math.isnan(v)])
        low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (math.nan, math.nan)
        out[key] = {"point": point[key], "low": float(low), "high": float(high)}
    return out


# --- routing thresholds measured on held-out items -------------------------------------------------


def threshold_figures(
    scores: np.ndarray,
    positive: np.ndarray,
    threshold: float,
    *,
    side: str,
    weights: np.ndarray,
    n_bootstrap: int,
    seed: int = 0,
    confidence_level: float = 0.95,
) -> dict[str, Any]:
    """Precision, recall and automation share of one fixed threshold, with bootstrap intervals.

    side "action": items with score ≥ t are enforced; precision = harmful share among them, recall =
    share of harmful items enforced. side "clear": items with score ≤ t are cleared; precision =
    harmless share among them, recall = share of harmful items that still reach people or
    enforcement. Share = fraction of items automated. All weighted by `weights`; intervals are
    percentile bootstraps over items (weights carried with their items).
    """
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    automated = scores >= threshold if side == "action" else scores <= threshold
    wanted = positive if side == "action" else ~positive

    def figures(rows: np.ndarray) -> np.ndarray:  # (B, n) → (B, 3)
        w, auto, good, harm = weights[rows], automated[rows], wanted[rows], positive[rows]
        kept = (w * auto).sum(1)
        precision = _safe_divide((w * (auto & good)).sum(1), kept)
        caught = (w * (auto & harm)).sum(1) if side == "action" else (w * (~auto & harm)).sum(1)
        recall = _safe_divide(caught, (w * harm).sum(1))
        return np.column_stack([precision, recall, _safe_divide(kept, w.sum(1))])

    n = len(scores)
    point = figures(np.arange(n)[None, :])[0] if n else np.full(3, math.nan)
    out: dict[str, Any] = {
        "threshold": float(threshold),
        "support": int(automated.sum()),
        **dict(zip(("precision", "recall", "share"), map(float, point), strict=True)),
    }
    if n >= 2 and n_bootstrap:
        rng = np.random.default_rng(seed)
        draws = np.concatenate(
            [
                figures(rng.integers(0, n, size=(min(200, n_bootstrap - start), n)))
                for start in range(0, n_bootstrap, 200)
            ]
        )
        tail = (1 - confidence_level) / 2 * 100
        low, high = np.percentile(draws, [tail, 100 - tail], axis=0)
        for j, key in enumerate(("precision", "recall", "share")):
            out[f"{key}_low"], out[f"{key}_high"] = float(low[j]), float(high[j])
    return out
