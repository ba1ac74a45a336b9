"""Evaluation of a head on held-out gold: scikit-learn metrics, calibration, slices, bootstrap CIs.

Inputs by task (n items, C classes):
- "binary": `y_true` (n,) in {0, 1}; `probs` (n,) or (n, 1) = P(positive). Classes are
  (negative, positive) and both get per-class metrics, so the harm and the clear both show.
- "multiclass": `y_true` (n,) class index; `probs` (n, C) per-class scores; prediction = argmax.
- "multilabel": `y_true` (n, C) in {0, 1}; `probs` (n, C); prediction = p ≥ threshold per label.

Precision, recall, F1, PR-AUC (average precision), ROC-AUC and confusion matrices come from
scikit-learn. Expected calibration error is not in scikit-learn, so it is computed here from
equal-width bins: for binary and multilabel on P(positive) pooled over labels (the same bins as
`sklearn.calibration.calibration_curve`), for multiclass on the top-label confidence.
Ranking metrics for a class with no positives or no negatives are NaN, never a made-up number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

# scikit-learn is imported inside the functions that compute with it: the models pages build
# `ReliabilityBin`s from stored metrics, and a web process must not pay for loading sklearn.

Task = Literal["binary", "multiclass", "multilabel"]


class EvaluationError(ValueError):
    """Arrays whose shapes do not fit the task."""


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    support: int  # gold positives of this class
    precision: float
    recall: float
    f1: float
    pr_auc: float  # average precision
    roc_auc: float


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_confidence: float  # NaN for an empty bin
    observed_frequency: float  # fraction of positives (or of correct top labels); NaN if empty


@dataclass(frozen=True)
class SliceMetrics:
    value: str
    n: int
    macro_f1: float
    eligible: bool  # n >= min_slice_size: counted for the worst-slice gap


@dataclass(frozen=True)
class SliceSummary:
    key: str  # metadata field: language, modality, region, source...
    slices: list[SliceMetrics]
    worst_value: str | None
    worst_macro_f1: float
    gap: float  # overall macro-F1 − worst eligible slice's macro-F1 (NaN if no slice is eligible)


@dataclass(frozen=True)
class Interval:
    point: float
    low: float
    high: float


@dataclass
class EvaluationReport:
    task: Task
    classes: list[str]
    n: int
    threshold: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    macro_pr_auc: float
    macro_roc_auc: float
    per_class: list[ClassMetrics]
    ece: float
    reliability: list[ReliabilityBin]
    confusion: list[Any]  # C×C (binary/multiclass; rows = gold) or C × 2×2 (multilabel)
    slices: list[SliceSummary] = field(default_factory=list)
    intervals: dict[str, Interval] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def class_f1(self, name: str) -> float:
        return next(c.f1 for c in self.per_class if c.name == name)


# --- shaping ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prepared:
    task: Task
    y: np.ndarray  # (n,) index for binary/multiclass, (n, C) indicator for multilabel
    pred: np.ndarray  # same form as y
    indicator: np.ndarray  # (n, C) gold indicator for ranking metrics
    scores: np.ndarray  # (n, C) score per class for ranking metrics


def _prepare(y_true: np.ndarray, probs: np.ndarray, task: Task, threshold: float) -> _Prepared:
    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    if task == "binary":
        p = probs.reshape(len(probs), -1)
        if p.shape[1] != 1 or y_true.shape != (len(p),):
            raise EvaluationError(
                f"binary: expected y (n,) and probs (n,) or (n, 1); got {y_true.shape}, {probs.shape}"
            )
        y = y_true.astype(np.int64)
        scores = np.column_stack([1 - p[:, 0], p[:, 0]])
        return _Prepared(task, y, (p[:, 0] >= threshold).astype(np.int64), np.eye(2, dtype=np.int64)[y], scores)
    if task == "multiclass":
        if probs.ndim != 2 or y_true.shape != (len(probs),):
            raise EvaluationError(f"multiclass: expected y (n,) and probs (n, C); got {y_true.shape}, {probs.shape}")
        y = y_true.astype(np.int64)
        return _Prepared(task, y, probs.argmax(axis=1), np.eye(probs.shape[1], dtype=np.int64)[y], probs)
    if task == "multilabel":
        if probs.ndim != 2 or y_true.shape != probs.shape:
            raise EvaluationError(
                f"multilabel: expected y and probs of one shape (n, C); got {y_true.shape}, {probs.shape}"
            )
        y = y_true.astype(np.int64)
        return _Prepared(task, y, (probs >= threshold).astype(np.int64), y, probs)
    raise EvaluationError(f"unknown task {task!r}")


def class_names(labels: Sequence[str], task: Task, negative: str | None = None) -> list[str]:
    """Display names per class: binary adds the negative class ("not_<label>" unless given)."""
    if task == "binary":
        return [negative or f"not_{labels[0]}", labels[0]]
    return list(labels)


# --- metrics --------------------------------------------------------------------------------------


def _prf(prep: _Prepared, n_classes: int, zero_division: float = 0.0) -> tuple[np.ndarray, ...]:
    from sklearn.metrics import precision_recall_fscore_support

    labels = None if prep.task == "multilabel" else list(range(n_classes))
    precision, recall, f1, _ = precision_recall_fscore_support(
        prep.y, prep.pred, labels=labels, zero_division=zero_division
    )
    return precision, recall, f1


def _ranking(metric: Callable[..., float], indicator: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class one-vs-rest ranking metric; NaN where a class lacks positives or negatives."""
    out = np.full(indicator.shape[1], np.nan)
    for j in range(indicator.shape[1]):
        if 0 < indicator[:, j].sum() < len(indicator):
            out[j] = metric(indicator[:, j], scores[:, j])
    return out


def macro_f1(y_true: np.ndarray, probs: np.ndarray, task: Task, *, threshold: float = 0.5) -> float:
    """Unweighted mean F1 over all classes (sklearn `average="macro"`)."""
    from sklearn.metrics import f1_score

    prep = _prepare(y_true, probs, task, threshold)
    labels = None if task == "multilabel" else list(range(prep.indicator.shape[1]))
    return float(f1_score(prep.y, prep.pred, labels=labels, average="macro", zero_division=0))


def reliability_bins(y_true: np.ndarray, probs: np.ndarray, task: Task, *, n_bins: int = 10) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] of confidence vs observed frequency (data for a reliability diagram)."""
    confidence, outcome = _calibration_pairs(_prepare(y_true, probs, task, 0.5))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Same binning rule as sklearn's calibration_curve: right-closed, the last bin includes 1.0.
    which = np.clip(np.searchsorted(edges[1:-1], confidence, side="right"), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        member = which == b
        count = int(member.sum())
        conf = float(confidence[member].mean()) if count else math.nan
        freq = float(outcome[member].mean()) if count else math.nan
        bins.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count, conf, freq))
    return bins


def _calibration_pairs(prep: _Prepared) -> tuple[np.ndarray, np.ndarray]:
    if prep.task == "multiclass":
        return prep.scores.max(axis=1), (prep.pred == prep.y).astype(np.float64)
    if prep.task == "binary":
        return prep.scores[:, 1], prep.y.astype(np.float64)
    return prep.scores.ravel(), prep.y.ravel().astype(np.float64)


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float:
    """Σ_b (n_b / N) · |observed_b − confidence_b| over non-empty bins."""
    total = sum(b.count for b in bins)
    if total == 0:
        return math.nan
    return float(sum(b.count / total * abs(b.observed_frequency - b.mean_confidence) for b in bins if b.count))


def ece(y_true: np.ndarray, probs: np.ndarray, task: Task, *, n_bins: int = 10) -> float:
    return expected_calibration_error(reliability_bins(y_true, probs, task, n_bins=n_bins))


def evaluate(
    y_true: np.ndarray,
    probs: np.ndarray,
    *,
    task: Task,
    classes: Sequence[str],
    threshold: float = 0.5,
    n_bins: int = 10,
    slices: Mapping[str, Sequence[str | None]] | None = None,
    min_slice_size: int = 30,
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> EvaluationReport:
    """Full report. `slices` maps a metadata key to one value per item (None = unknown).

    `n_bootstrap` = 0 skips the confidence intervals (they cost roughly 5 ms per resample).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    prep = _prepare(y_true, probs, task, threshold)
    n_classes = prep.indicator.shape[1]
    if len(classes) != n_classes:
        raise EvaluationError(f"{len(classes)} class names for {n_classes} classes")
    precision, recall, f1 = _prf(prep, n_classes)
    pr_auc = _ranking(average_precision_score, prep.indicator, prep.scores)
    roc_auc = _ranking(roc_auc_score, prep.indicator, prep.scores)
    support = prep.indicator.sum(axis=0)
    per_class = [
        ClassMetrics(classes[j], int(support[j]), *(float(m[j]) for m in (precision, recall, f1, pr_auc, roc_auc)))
        for j in range(n_classes)
    ]
    bins = reliability_bins(y_true, probs, task, n_bins=n_bins)
    report = EvaluationReport(
        task=task,
        classes=list(classes),
        n=len(prep.y),
        threshold=threshold,
        macro_precision=float(precision.mean()),
        macro_recall=float(recall.mean()),
        macro_f1=float(f1.mean()),
        macro_pr_auc=_nanmean(pr_auc),
        macro_roc_auc=_nanmean(roc_auc),
        per_class=per_class,
        ece=expected_calibration_error(bins),
        reliability=bins,
        confusion=_confusion(prep, n_classes),
    )
    if slices:
        report.slices = [
            slice_summary(
                key,
                values,
                y_true,
                probs,
                task=task,
                overall=report.macro_f1,
                threshold=threshold,
                min_slice_size=min_slice_size,
            )
            for key, values in slices.items()
        ]
    if n_bootstrap:
        report.intervals = bootstrap_intervals(
            y_true,
            probs,
            task=task,
            classes=classes,
            threshold=threshold,
            n_bins=n_bins,
            n_bootstrap=n_bootstrap,
            confidence_level=confidence_level,
            seed=seed,
            point=report,
        )
    return report


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _confusion(prep: _Prepared, n_classes: int) -> list[Any]:
    from sklearn.metrics import confusion_matrix, multilabel_confusion_matrix

    if prep.task == "multilabel":
        return multilabel_confusion_matrix(prep.y, prep.pred).tolist()
    return confusion_matrix(prep.y, prep.pred, labels=list(range(n_classes))).tolist()


# --- slices ---------------------------------------------------------------------------------------


def slice_summary(
    key: str,
    values: Sequence[str | None],
    y_true: np.ndarray,
    probs: np.ndarray,
    *,
    task: Task,
    overall: float,
    threshold: float = 0.5,
    min_slice_size: int = 30,
) -> SliceSummary:
    """Macro-F1 per value of one metadata field, and the gap from overall to the worst slice.

    Slices smaller than `min_slice_size` are reported but not eligible as "worst": a handful of
    items would make the gap noise. Within a slice, a class that is neither present nor
    predicted is left out of its macro average (it has no F1 to speak of there).
    """
    names = ["unknown" if v is None else str(v) for v in values]
    if len(names) != len(y_true):
        raise EvaluationError(f"slice {key!r}: {len(names)} values for {len(y_true)} items")
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    n_classes = _prepare(y_true[:1], probs[:1], task, threshold).indicator.shape[1]
    found = []
    for value in sorted(set(names)):
        rows = np.flatnonzero(np.asarray(names) == value)
        prep = _prepare(y_true[rows], probs[rows], task, threshold)
        f1 = _nanmean(_prf(prep, n_classes, zero_division=np.nan)[2])
        found.append(SliceMetrics(value, len(rows), f1, len(rows) >= min_slice_size))
    eligible = [s for s in found if s.eligible and not math.isnan(s.macro_f1)]
    worst = min(eligible, key=lambda s: s.macro_f1, default=None)
    if worst is None:
        return SliceSummary(key, found, None, math.nan, math.nan)
    return SliceSummary(key, found, worst.value, worst.macro_f1, overall - worst.macro_f1)


# --- bootstrap ------------------------------------------------------------------------------------


def bootstrap_intervals(
    y_true: np.ndarray,
    probs: np.ndarray,
    *,
    task: Task,
    classes: Sequence[str],
    threshold: float = 0.5,
    n_bins: int = 10,
    n_bootstrap: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
    point: EvaluationReport | None = None,
) -> dict[str, Interval]:
    """Percentile bootstrap over items for macro-F1, per-class F1, macro PR-AUC and ECE.

    Keys: "macro_f1", "macro_pr_auc", "ece", "f1:<class>". Resamples where a ranking metric is
    undefined (a class missing) are skipped for that metric only.
    """
    from sklearn.metrics import average_precision_score

    y_true, probs = np.asarray(y_true), np.asarray(probs)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    samples: dict[str, list[float]] = {"macro_f1": [], "macro_pr_auc": [], "ece": []}
    samples.update({f"f1:{c}": [] for c in classes})
    for _ in range(n_bootstrap):
        rows = rng.integers(0, n, n)
        prep = _prepare(y_true[rows], probs[rows], task, threshold)
        f1 = _prf(prep, len(classes))[2]
        samples["macro_f1"].append(float(f1.mean()))
        for c, value in zip(classes, f1, strict=True):
            samples[f"f1:{c}"].append(float(value))
        samples["macro_pr_auc"].append(_nanmean(_ranking(average_precision_score, prep.indicator, prep.scores)))
        samples["ece"].append(ece(y_true[rows], probs[rows], task, n_bins=n_bins))
    point = point or evaluate(y_true, probs, task=task, classes=classes, threshold=threshold, n_bootstrap=0)
    points = {"macro_f1": point.macro_f1, "macro_pr_auc": point.macro_pr_auc, "ece": point.ece}
    points.update({f"f1:{c.name}": c.f1 for c in point.per_class})
    tail = (1 - confidence_level) / 2 * 100
    intervals = {}
    for key, values in samples.items():
        finite = np.asarray([v for v in values if not math.isnan(v)])
        low, high = np.percentile(finite, [tail, 100 - tail]) if finite.size else (math.nan, math.nan)
        intervals[key] = Interval(points[key], float(low), float(high))
    return intervals
