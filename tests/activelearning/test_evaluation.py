"""Evaluation numbers equal scikit-learn's; calibration, slices and bootstrap behave as documented."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET  # parses only SVG this test generated itself

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from activelearning.evaluation import (
    ReliabilityBin,
    class_names,
    ece,
    evaluate,
    expected_calibration_error,
    reliability_bins,
    slice_summary,
)
from activelearning.plots import line_chart_svg, reliability_svg

GEN = np.random.default_rng(42)
Y_BIN = GEN.integers(0, 2, 300)
P_BIN = np.clip(Y_BIN * 0.35 + GEN.random(300) * 0.65, 0, 1)


def test_binary_metrics_equal_sklearn() -> None:
    report = evaluate(Y_BIN, P_BIN, task="binary", classes=["clear", "harm"], n_bootstrap=0)
    pred = (P_BIN >= 0.5).astype(int)
    precision, recall, f1, support = precision_recall_fscore_support(Y_BIN, pred, labels=[0, 1], zero_division=0)
    assert report.macro_f1 == pytest.approx(f1_score(Y_BIN, pred, average="macro"))
    assert [c.f1 for c in report.per_class] == pytest.approx(f1.tolist())
    assert [c.precision for c in report.per_class] == pytest.approx(precision.tolist())
    assert [c.recall for c in report.per_class] == pytest.approx(recall.tolist())
    assert [c.support for c in report.per_class] == support.tolist()
    assert report.per_class[1].pr_auc == pytest.approx(average_precision_score(Y_BIN, P_BIN))
    assert report.per_class[0].pr_auc == pytest.approx(average_precision_score(1 - Y_BIN, 1 - P_BIN))
    assert report.per_class[1].roc_auc == pytest.approx(roc_auc_score(Y_BIN, P_BIN))
    assert report.confusion == confusion_matrix(Y_BIN, pred).tolist()


def test_multilabel_metrics_equal_sklearn() -> None:
    y = GEN.integers(0, 2, (200, 3))
    p = np.clip(y * 0.3 + GEN.random((200, 3)) * 0.7, 0, 1)
    report = evaluate(y, p, task="multilabel", classes=["insult", "threat", "spam"], n_bootstrap=0)
    pred = (p >= 0.5).astype(int)
    assert report.macro_f1 == pytest.approx(f1_score(y, pred, average="macro"))
    assert [c.f1 for c in report.per_class] == pytest.approx(f1_score(y, pred, average=None).tolist())
    assert report.macro_pr_auc == pytest.approx(average_precision_score(y, p, average="macro"))
    assert report.macro_roc_auc == pytest.approx(roc_auc_score(y, p, average="macro"))
    assert report.confusion == multilabel_confusion_matrix(y, pred).tolist()


def test_multiclass_metrics_equal_sklearn() -> None:
    y = GEN.integers(0, 3, 240)
    raw = GEN.random((240, 3)) + np.eye(3)[y] * 0.4
    scores = raw / raw.sum(axis=1, keepdims=True)  # sklearn's multiclass AUC wants rows summing to 1
    report = evaluate(y, scores, task="multiclass", classes=["a", "b", "c"], n_bootstrap=0)
    pred = scores.argmax(axis=1)
    assert report.macro_f1 == pytest.approx(f1_score(y, pred, average="macro"))
    assert report.confusion == confusion_matrix(y, pred).tolist()
    assert report.macro_roc_auc == pytest.approx(roc_auc_score(y, scores, multi_class="ovr", average="macro"))


def test_ranking_metrics_are_nan_for_a_class_without_positives() -> None:
    report = evaluate(np.zeros(10, dtype=int), np.linspace(0, 1, 10), task="binary", classes=["a", "b"], n_bootstrap=0)
    assert math.isnan(report.per_class[1].roc_auc) and math.isnan(report.per_class[1].pr_auc)


def test_reliability_bins_match_sklearn_calibration_curve() -> None:
    bins = reliability_bins(Y_BIN, P_BIN, "binary", n_bins=10)
    prob_true, prob_pred = calibration_curve(Y_BIN, P_BIN, n_bins=10, strategy="uniform")
    filled = [b for b in bins if b.count]
    assert [b.observed_frequency for b in filled] == pytest.approx(prob_true.tolist())
    assert [b.mean_confidence for b in filled] == pytest.approx(prob_pred.tolist())
    assert sum(b.count for b in bins) == len(Y_BIN)


def test_ece_is_zero_when_calibrated_and_the_gap_when_not() -> None:
    y = np.array([1] * 8 + [0] * 2)
    assert ece(y, np.full(10, 0.8), "binary") == pytest.approx(0.0)
    assert ece(np.array([1, 0] * 5), np.full(10, 0.9), "binary") == pytest.approx(0.4)
    bins = [ReliabilityBin(0.0, 0.5, 3, 0.2, 0.0), ReliabilityBin(0.5, 1.0, 1, 0.9, 1.0)]
    assert expected_calibration_error(bins) == pytest.approx(0.75 * 0.2 + 0.25 * 0.1)


def test_bootstrap_intervals_contain_the_point_estimates() -> None:
    report = evaluate(Y_BIN, P_BIN, task="binary", classes=["clear", "harm"], n_bootstrap=60, seed=1)
    assert set(report.intervals) == {"macro_f1", "macro_pr_auc", "ece", "f1:clear", "f1:harm"}
    for key, interval in report.intervals.items():
        assert interval.low <= interval.point <= interval.high, key
        assert interval.high - interval.low < 0.3, key
    assert report.intervals["macro_f1"].point == report.macro_f1


def test_worst_slice_gap_is_overall_minus_the_worst_eligible_slice() -> None:
    y = np.array([0, 1] * 20 + [0, 1] * 20 + [1] * 5)
    probs = np.array([0.1, 0.9] * 20 + [0.1, 0.9] * 10 + [0.9, 0.1] * 10 + [0.1] * 5)
    language = ["en"] * 40 + ["fr"] * 40 + ["de"] * 5
    report = evaluate(
        y, probs, task="binary", classes=["a", "b"], slices={"language": language}, min_slice_size=30, n_bootstrap=0
    )
    summary = report.slices[0]
    fr = slice(40, 80)
    fr_f1 = f1_score(y[fr], (probs[fr] >= 0.5).astype(int), average="macro")
    assert summary.worst_value == "fr"  # "de" is all wrong but too small to be eligible
    assert summary.worst_macro_f1 == pytest.approx(fr_f1)
    assert summary.gap == pytest.approx(report.macro_f1 - fr_f1)
    by_value = {s.value: s for s in summary.slices}
    assert by_value["en"].macro_f1 == pytest.approx(1.0)
    assert not by_value["de"].eligible and by_value["de"].n == 5


def test_slice_missing_a_class_averages_only_the_classes_it_has() -> None:
    summary = slice_summary(
        "region",
        ["eu"] * 4,
        np.array([1, 1, 1, 1]),
        np.array([0.9, 0.9, 0.9, 0.9]),
        task="binary",
        overall=1.0,
        min_slice_size=1,
    )
    assert summary.slices[0].macro_f1 == pytest.approx(1.0)


def test_binary_class_names_add_the_negative_class() -> None:
    assert class_names(["toxic"], "binary") == ["not_toxic", "toxic"]
    assert class_names(["toxic"], "binary", negative="clean") == ["clean", "toxic"]


def test_svg_charts_are_well_formed_and_escape_names() -> None:
    bins = reliability_bins(Y_BIN, P_BIN, "binary")
    ET.fromstring(reliability_svg(bins, title="<script>alert(1)</script>"))  # noqa: S314
    svg = line_chart_svg(
        {"<b>random</b>": [(10, 0.5), (20, 0.6)], "entropy": [(10, 0.55), (20, 0.7)]},
        title="curve",
        x_label="labels",
        y_label="F1",
        log_x=True,
        hlines={"target": 0.65},
    )
    root = ET.fromstring(svg)  # noqa: S314
    assert "<b>" not in svg and root.tag.endswith("svg")
