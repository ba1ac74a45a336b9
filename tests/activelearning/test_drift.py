"""PSI of the numeric core (`activelearning.drift`) against hand computations and known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from activelearning import drift


def test_psi_matches_a_hand_computation() -> None:
    # ref 50/50, live 90/10: 0.4·ln(0.9/0.5) + (−0.4)·ln(0.1/0.5)
    expected = 0.4 * math.log(0.9 / 0.5) + (-0.4) * math.log(0.1 / 0.5)

    assert drift.psi([50, 50], [90, 10]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.8789, abs=1e-4)


def test_an_empty_bin_is_floored_at_epsilon_instead_of_infinite() -> None:
    # live puts nothing in the second bin: its proportion counts as 1e-4
    expected = (1 - 0.5) * math.log(1 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)

    value = drift.psi([10, 10], [20, 0])

    assert math.isfinite(value) and value == pytest.approx(expected, rel=1e-12)


def test_identical_distributions_have_psi_near_zero_and_level_ok() -> None:
    rng = np.random.default_rng(0)
    reference, live = rng.beta(2, 5, 5000), rng.beta(2, 5, 5000)

    result = drift.numeric_drift("score", reference, live)

    assert result.psi is not None and result.psi < 0.01
    assert result.level == drift.OK and len(result.bins) == 10
    assert result.reference == pytest.approx([0.1] * 10, abs=0.002)  # deciles of the reference


def test_a_shifted_score_distribution_is_above_the_alert_threshold() -> None:
    rng = np.random.default_rng(1)
    reference, live = rng.beta(2, 5, 5000), rng.beta(5, 2, 5000)

    result = drift.numeric_drift("score", reference, live)

    assert result.psi is not None and result.psi > drift.ALERT and result.level == drift.ALERTING


def test_a_moderate_shift_is_watched_not_alerted() -> None:
    rng = np.random.default_rng(2)
    reference, live = rng.normal(0, 1, 20000), rng.normal(0.4, 1, 20000)

    result = drift.numeric_drift("length", reference, live)

    # PSI of N(0,1) vs N(μ,1) is about μ² in the limit (0.16 here), a bit less with ten bins
    assert drift.WATCH <= result.psi < drift.ALERT and result.level == drift.WATCHING


def test_numeric_bins_follow_the_reference_and_merge_tied_cut_points() -> None:
    reference = [0.0] * 80 + [1.0] * 20  # every decile cut is 0 or 1

    edges = drift.quantile_edges(reference)

    assert edges == [0.0, 1.0]
    assert drift.numeric_counts([-1, 0, 0.5, 1, 2], edges) == [1, 2, 2]
    assert drift.numeric_labels(edges) == ["< 0", "0 – 1", "≥ 1"]


def test_categorical_drift_folds_unseen_and_missing_values_against_the_reference() -> None:
    reference = ["en"] * 80 + ["de"] * 20
    live = ["en"] * 40 + ["fr"] * 40 + [None] * 20

    result = drift.categorical_drift("language", reference, live, min_count=50)

    assert result.bins == ["en", "de", drift.OTHER]
    assert result.live == pytest.approx([0.4, 0.0, 0.6])  # "fr" and missing (UNKNOWN) are no reference category: OTHER
    assert result.level == drift.ALERTING
    p, q = np.maximum([0.8, 0.2, 0.0], 1e-4), np.maximum([0.4, 0.0, 0.6], 1e-4)
    assert result.psi == pytest.approx(float(np.sum((q - p) * np.log(q / p))), abs=1e-6)


def test_too_few_items_give_no_level_and_the_worst_level_wins() -> None:
    result = drift.numeric_drift("score", [0.1, 0.2, 0.3] * 30, [0.9] * 10)

    assert result.psi is not None and result.psi > drift.ALERT and result.level == drift.TOO_FEW
    assert drift.worst_level([drift.OK, drift.TOO_FEW, drift.WATCHING]) == drift.WATCHING
    assert drift.worst_level([drift.TOO_FEW]) == drift.TOO_FEW


def test_histograms_over_different_bins_are_refused() -> None:
    with pytest.raises(ValueError, match="different bins"):
        drift.psi([1, 2], [1, 2, 3])


def test_with_no_change_psi_stays_near_its_sampling_noise_at_the_minimum_count() -> None:
    rng = np.random.default_rng(4)
    n = drift.MIN_COUNT
    values = [drift.numeric_drift("score", rng.random(n), rng.random(n)).psi for _ in range(200)]

    # expected (B − 1)(1/n + 1/n) = 0.09 for ten bins and 200 a side; noise alone must not alert
    assert np.mean(values) == pytest.approx(9 * 2 / n, rel=0.2)
    assert np.mean(np.asarray(values) >= drift.ALERT) <= 0.02  # P(χ²(9) ≥ 25) ≈ 0.003
