"""The Wilson interval behind reviewer flags equals statsmodels' to 1e-12."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from labeling.stats.proportions import wilson_interval


def test_equals_statsmodels_on_random_counts() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(1, 400))
        successes = int(rng.integers(0, n + 1))
        low, high = proportion_confint(successes, n, alpha=0.05, method="wilson")
        assert wilson_interval(successes, n) == pytest.approx((low, high), abs=1e-12)


def test_small_samples_give_wide_intervals_and_bad_counts_are_refused() -> None:
    low, high = wilson_interval(12, 20)  # 60 % of 20: compatible with 80 %
    assert low < 0.4 and high > 0.78
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(5, 4)
