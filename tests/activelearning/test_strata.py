"""Per-stratum held-out figures: routes to strata, Horvitz–Thompson weights, weighted metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from activelearning.services.numeric import macro_f1, threshold_for_precision, threshold_for_recall
from activelearning.strata import (
    decision_stratum,
    effective_n,
    figure_label,
    stratum_of,
    stratum_report,
    stratum_weights,
    threshold_figures,
)


def test_routes_fall_into_strata_that_are_never_pooled() -> None:
    assert {stratum_of(r) for r in ("low_confidence", "audit_sample")} == {"traffic"}
    assert {stratum_of(r) for r in ("active_learning", "relabel", "label_error", "appeal")} == {"selected"}
    assert (stratum_of("backfill"), stratum_of("honeypot"), stratum_of(""), stratum_of(None)) == (
        "imported",
        "honeypot",
        "unknown",
        "unknown",
    )


def test_traffic_is_weighted_by_inverse_propensity_and_a_bad_propensity_is_refused() -> None:
    assert stratum_weights("traffic", np.array([1.0, 0.25])).tolist() == [1.0, 4.0]
    assert stratum_weights("selected", np.array([1.0, 0.25])).tolist() == [1.0, 1.0]
    assert effective_n(np.array([1.0, 1.0, 1.0])) == pytest.approx(3.0)
    assert effective_n(np.array([1.0, 9.0])) == pytest.approx(100 / 82)
    with pytest.raises(ValueError, match="propensities"):
        stratum_weights("traffic", np.array([0.0]))


def test_decision_stratum_prefers_traffic_then_imported_then_selected() -> None:
    assert decision_stratum({"traffic": 20, "imported": 500}, 20) == "traffic"
    assert decision_stratum({"traffic": 19, "imported": 500, "selected": 900}, 20) == "imported"
    assert decision_stratum({"selected": 25, "honeypot": 900}, 20) == "selected"
    assert decision_stratum({"honeypot": 900, "unknown": 900}, 20) is None


def test_labels_name_split_stratum_and_weighting() -> None:
    assert figure_label("test", "traffic", n=412, n_eff=97.34, weighted=True) == (
        "test · traffic (weighted, n=412, n_eff=97.3)"
    )
    assert figure_label("dev", "selected", n=40) == "dev · selected (unweighted, n=40)"


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_weighted_figures_equal_sklearn_with_sample_weight(task: str) -> None:
    rng = np.random.default_rng(7)
    n = 300
    weights = 1 / rng.choice([1.0, 0.5, 0.1], size=n)
    if task == "binary":
        y = rng.integers(0, 2, n)
        probs = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
        pred, indicator, scores = (probs >= 0.5).astype(int), np.eye(2)[y], np.column_stack([1 - probs, probs])
        classes = ["ok", "harm"]
    else:
        y = rng.integers(0, 3, n)
        probs = rng.dirichlet(np.ones(3), n) + np.eye(3)[y] * 0.4
        probs /= probs.sum(1, keepdims=True)
        pred, indicator, scores = probs.argmax(1), np.eye(3)[y], probs
        classes = ["a", "b", "c"]

    report = stratum_report(y, probs, task=task, classes=classes, weights=weights, n_bootstrap=30)

    kwargs = {"average": "macro", "sample_weight": weights, "zero_division": 0, "labels": range(len(classes))}
    assert report["macro_f1"] == pytest.approx(f1_score(y, pred, **kwargs), abs=1e-12)
    assert report["macro_precision"] == pytest.approx(precision_score(y, pred, **kwargs), abs=1e-12)
    assert report["macro_recall"] == pytest.approx(recall_score(y, pred, **kwargs), abs=1e-12)
    expected_ap = np.mean(
        [average_precision_score(indicator[:, j], scores[:, j], sample_weight=weights) for j in range(len(classes))]
    )
    assert report["macro_pr_auc"] == pytest.approx(expected_ap, abs=1e-12)
    assert report["n"] == n and report["n_eff"] == pytest.approx(effective_n(weights))
    low, high = report["intervals"]["macro_f1"]["low"], report["intervals"]["macro_f1"]["high"]
    assert low < report["macro_f1"] < high
    assert macro_f1(y, pred, len(classes), weights) == pytest.approx(report["macro_f1"], abs=1e-12)


def test_weighted_thresholds_reduce_to_counts_with_equal_weights_and_move_with_weights() -> None:
    scores = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05])
    positive = np.array([1, 1, 1, 0, 1, 0, 0, 1, 0, 0], dtype=bool)
    plain = threshold_for_precision(scores, positive, 0.8, min_support=1)
    same = threshold_for_precision(scores, positive, 0.8, min_support=1, weights=np.ones(10))
    assert plain == same and plain.threshold == 0.6
    heavy_negative = np.ones(10)
    heavy_negative[3] = 10.0  # the 0.7 negative stands for ten items of traffic
    assert threshold_for_precision(scores, positive, 0.8, min_support=1, weights=heavy_negative).threshold == 0.8
    assert threshold_for_recall(scores, positive, 0.8, min_support=1).threshold == 0.4

    measured = threshold_figures(scores, positive, 0.6, side="action", weights=np.ones(10), n_bootstrap=200)
    assert (measured["precision"], measured["recall"], measured["share"]) == (0.8, 0.8, 0.5)
    assert measured["precision_low"] <= 0.8 <= measured["precision_high"] and measured["support"] == 5
