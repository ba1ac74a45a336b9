"""The numeric helpers of the Django side: fast macro-F1, paired bootstrap, splits, thresholds."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from activelearning.services.numeric import (
    TEST,
    finite_or_none,
    macro_f1,
    paired_bootstrap,
    split_codes,
    threshold_for_precision,
    threshold_for_recall,
)


def test_macro_f1_matches_scikit_learn_for_every_task() -> None:
    rng = np.random.default_rng(3)
    y, pred = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    assert np.isclose(macro_f1(y, pred, 3), f1_score(y, pred, labels=[0, 1, 2], average="macro", zero_division=0))
    yb, pb = rng.integers(0, 2, 300), np.zeros(300, dtype=np.int64)  # a class never predicted
    assert np.isclose(macro_f1(yb, pb, 2), f1_score(yb, pb, labels=[0, 1], average="macro", zero_division=0))
    ym, pm = rng.integers(0, 2, (200, 4)), rng.integers(0, 2, (200, 4))
    assert np.isclose(macro_f1(ym, pm, 4), f1_score(ym, pm, average="macro", zero_division=0))


def test_paired_bootstrap_of_identical_models_is_exactly_zero() -> None:
    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 2, 200), rng.integers(0, 2, 200)

    delta = paired_bootstrap(y, pred, pred, 2, n_bootstrap=200)

    assert (delta.delta, delta.low, delta.high) == (0.0, 0.0, 0.0)


def test_paired_bootstrap_puts_a_clearly_better_model_above_zero() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    noisy = np.where(rng.random(300) < 0.35, 1 - y, y)
    better = np.where(rng.random(300) < 0.1, 1 - y, y)

    delta = paired_bootstrap(y, noisy, better, 2, n_bootstrap=500, seed=4)

    assert 0 < delta.low < delta.delta < delta.high and delta.n == 300


def test_split_is_stable_and_close_to_the_configured_shares() -> None:
    keys = [f"comments\x1fc-{i}" for i in range(6000)]
    split = split_codes(keys, salt="s", dev=0.15, test=0.2)

    assert np.array_equal(split[::-1], split_codes(keys[::-1], salt="s", dev=0.15, test=0.2))
    assert abs((split == TEST).mean() - 0.2) < 0.02
    assert not np.array_equal(split, split_codes(keys, salt="other", dev=0.15, test=0.2))


def test_thresholds_for_a_precision_and_a_recall_target() -> None:
    scores = np.array([0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95])
    positive = np.array([0, 0, 0, 1, 0, 1, 0, 1, 1, 1], dtype=bool)

    action = threshold_for_precision(scores, positive, 0.75, min_support=2)
    clear = threshold_for_recall(scores, positive, 1.0, min_support=2)

    assert action.threshold == 0.6 and action.precision == 0.8 and action.support == 5
    assert clear.threshold == 0.2 and clear.precision == 1.0 and clear.recall == 1.0
    assert threshold_for_precision(scores, positive, 1.01) is None


def test_json_for_postgres_has_no_nan() -> None:
    assert finite_or_none({"a": [float("nan"), 1.0, np.float64("inf")], "b": (np.int64(2),)}) == {
        "a": [None, 1.0, None],
        "b": [2],
    }
