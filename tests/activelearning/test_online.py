"""Online automation figures from the audit sample: the Hájek estimate, its interval, calibration.

The interval is checked against simulations with known truth: over 300 draws a 95 % interval
should hold the truth about 95 % of the time; 0.92 is 2.4 binomial standard errors below 0.95, so
a correct interval fails this about once in a hundred runs and an undercovering one (Kish-Wilson
at 0.85 in the second design) fails every time.
"""

from __future__ import annotations

import numpy as np
import pytest

from activelearning.online import (
    NO_AUDITED,
    AuditDesign,
    coverage,
    hajek_share,
    simulate_audit,
    weighted_reliability,
)
from activelearning.strata import effective_n, shape, weighted_ece
from labeling.stats.proportions import wilson_interval

# 100k automatic actions: 60 % in the high-score band (98 % violations, audited at 2 %), 40 % in the
# low-score band (80 % violations, audited at 10 %). True precision 0.908; the audit sample holds
# mostly low-score items, so the unweighted share is pulled down towards 0.80.
HIGH_LOW = AuditDesign(n_decisions=100_000, shares=(0.6, 0.4), truth=(0.98, 0.80), rates=(0.02, 0.10))
# The other way round: the rarely audited band is the noisy one (its weight 200 vs 10).
NOISY_RARE = AuditDesign(n_decisions=100_000, shares=(0.6, 0.4), truth=(0.98, 0.80), rates=(0.10, 0.005))
# A small week: about 100 audited items.
SMALL = AuditDesign(n_decisions=2_000, shares=(0.6, 0.4), truth=(0.98, 0.80), rates=(0.02, 0.10))


@pytest.mark.parametrize("design", [HIGH_LOW, NOISY_RARE, SMALL], ids=["high-low", "noisy-rare", "small"])
def test_interval_covers_the_known_truth_at_close_to_its_nominal_rate(design: AuditDesign) -> None:
    result = coverage(design, draws=300, seed=7)
    assert result["draws"] == 300
    assert result["coverage"] >= 0.92, result
    assert result["coverage"] <= 0.995, result  # not bought with a uselessly wide interval either
    assert abs(result["bias"]) < 0.005, result


def test_the_unweighted_share_is_biased_and_its_interval_misses() -> None:
    result = coverage(HIGH_LOW, draws=100, seed=3)
    assert result["naive_bias"] < -0.06  # 0.8·(5/6)+0.98·(1/6) ≈ 0.83 expected, against 0.908
    assert result["naive_coverage"] < 0.05
    assert abs(result["bias"]) < 0.005


def test_kish_wilson_would_undercover_where_the_design_interval_does_not() -> None:
    """Why the interval is not Wilson on Kish's n_eff: weights that favour noisy items break it."""
    rng = np.random.default_rng(11)
    truth, kish_hits = NOISY_RARE.true_share, 0
    for _ in range(200):
        positive, propensity = simulate_audit(NOISY_RARE, rng)
        share = hajek_share(positive, propensity)
        low, high = wilson_interval(share.estimate * share.n_eff, share.n_eff)  # type: ignore[arg-type]
        kish_hits += low <= truth <= high
    assert kish_hits / 200 < 0.92


def test_hand_computed_hajek_estimate() -> None:
    # Two items audited at 10 % (weight 10), one a violation; two at 50 % (weight 2), both violations.
    share = hajek_share([True, False, True, True], [0.1, 0.1, 0.5, 0.5])
    assert share.estimate == pytest.approx((10 + 2 + 2) / (10 + 10 + 2 + 2))
    assert share.unweighted == pytest.approx(0.75)
    assert share.n_eff == pytest.approx(24**2 / (100 + 100 + 4 + 4))
    assert (share.n, share.positives, share.total_weight) == (4, 3, 24.0)
    assert share.low < share.estimate < share.high


def test_no_audited_item_gives_no_estimate_and_says_why() -> None:
    share = hajek_share([], [])
    assert (share.estimate, share.low, share.high, share.n) == (None, None, None, 0)
    assert share.reason == NO_AUDITED and not share.measured


def test_all_same_outcome_uses_kish_n_eff_and_keeps_a_one_sided_interval() -> None:
    share = hajek_share([True] * 6, [0.1, 0.1, 0.1, 0.5, 0.5, 0.5])
    assert share.estimate == 1.0 and share.high == 1.0
    weights = np.array([10.0] * 3 + [2.0] * 3)
    assert share.interval_n == pytest.approx(effective_n(weights))
    assert share.low == pytest.approx(wilson_interval(share.interval_n, share.interval_n)[0])
    assert 0 < share.low < 1
    none = hajek_share([False] * 3, [0.2] * 3)
    assert none.estimate == 0.0 and none.low == pytest.approx(0.0, abs=1e-12)
    assert none.high == pytest.approx(wilson_interval(0, 3)[1])


def test_propensity_one_is_weight_one_and_equal_weights_give_the_plain_wilson_interval() -> None:
    outcomes = [True] * 7 + [False] * 3
    for propensity in (1.0, 0.25):
        share = hajek_share(outcomes, [propensity] * 10)
        assert share.estimate == pytest.approx(0.7) and share.n_eff == pytest.approx(10)
        assert (share.low, share.high) == pytest.approx(wilson_interval(7, 10))


def test_a_propensity_outside_zero_one_is_refused() -> None:
    with pytest.raises(ValueError, match="propensities"):
        hajek_share([True], [0.0])
    with pytest.raises(ValueError, match="propensities"):
        hajek_share([True], [1.5])
    with pytest.raises(ValueError, match="equal length"):
        hajek_share([True, False], [0.5])


def test_weighted_reliability_matches_the_held_out_ece_and_weights_by_inverse_propensity() -> None:
    rng = np.random.default_rng(5)
    scores = rng.random(400)
    positive = rng.random(400) < scores**2
    propensity = np.where(scores > 0.5, 0.05, 1.0)
    reliability = weighted_reliability(scores, positive, propensity)
    reference = weighted_ece(shape(positive.astype(int), scores, "binary", 2), 1.0 / propensity)
    assert reliability.ece == pytest.approx(reference)
    assert sum(b.n for b in reliability.bins) == 400
    top = reliability.bins[-1]
    in_top = scores > 0.9
    assert top.observed == pytest.approx(positive[in_top].mean())  # one weight within the bin
    assert top.weight == pytest.approx(in_top.sum() / 0.05)
    assert weighted_reliability([], [], []).ece is None
