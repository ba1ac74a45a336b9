"""Online figures of automation from the audit sample: what share of automatic actions were right.

Routing sends each automatic decision to audit with a known probability π (its rule's audit rate,
stored as `ModelDecision.sampling_propensity`); reviewers label the sampled ones. Among the
audited items of one automatic outcome, each weighted by w = 1/π:

- **precision of automatic actions** = share of violations among auto-enforced items;
- **miss rate of automatic clears** = share of violations among auto-cleared items.

Both are estimated with the **Hájek ratio estimator** p̂ = Σ wᵢyᵢ / Σ wᵢ (Horvitz–Thompson
weighting, normalised by the estimated population size Σ wᵢ rather than the unknown true one).
When rates differ between items — a rule changed mid-week, or rates differ by score band — the
unweighted share over-represents the items audited most often and is biased; the Hájek estimate
is not (up to O(1/n)).

**Interval**: a Wilson score interval (`labeling.stats.proportions.wilson_interval`) on the
design-based effective sample size n* = p̂(1 − p̂) / v̂, where v̂ = Σ wᵢ²(yᵢ − p̂)² / (Σ wᵢ)² is the
linearised (with-replacement) variance of the Hájek ratio, and n* is capped at the audited count n
(a design effect of at least 1, as Korn & Graubard 1998 do). When every audited item has the same
outcome v̂ is 0, and Kish's n_eff = (Σw)² / Σw² stands in for n*. Why not Wilson on Kish's n_eff
throughout: Kish's design effect assumes weights unrelated to outcomes; when the heavily weighted
(rarely audited) items are also the noisier ones it undercovers (about 84–86 % for a nominal 95 %
in the simulation of `bench/ipw_coverage.py`), while n* covers at the nominal rate there and stays
conservative the other way round. Why not the percentile bootstrap of `activelearning.strata`:
with all outcomes equal it collapses to a zero-width interval, and at 0–20 audited items a week
it undercovers; it also costs a thousand resamples per cell. Kish's n_eff is still reported, as
`activelearning.strata` does, to say how much the unequal weights cost.

No audited item: no estimate, and the reason says so. Propensity 1 (everything audited) gives
weight 1. A propensity outside (0, 1] is an error: such an item cannot have been sampled.
Plain numpy; no Django.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from labeling.stats.proportions import Z_95, wilson_interval

from .strata import effective_n

ESTIMATOR = "Hájek (inverse-propensity weighted ratio)"
INTERVAL = "95 % Wilson interval on the design effective n (linearised variance, capped at n)"
NO_AUDITED = "no audited item with a gold label"


@dataclass(frozen=True)
class WeightedShare:
    """A weighted share of positives among audited items, or why there is none.

    `estimate`, `low`, `high` are None exactly when `n` is 0 (`reason` then says why). `unweighted`
    is the plain share, kept to show what ignoring the propensities would have said.
    """

    n: int
    positives: int
    n_eff: float
    total_weight: float
    estimate: float | None
    low: float | None
    high: float | None
    unweighted: float | None
    interval_n: float  # the n the Wilson interval was taken on (n*, or Kish's n_eff)
    reason: str = ""

    @property
    def measured(self) -> bool:
        return self.estimate is not None

    def as_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "positives": self.positives,
            "n_eff": round(self.n_eff, 3),
            "total_weight": round(self.total_weight, 3),
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "unweighted": self.unweighted,
            "interval_n": round(self.interval_n, 3),
            "reason": self.reason,
        }


def _weights(propensity: np.ndarray) -> np.ndarray:
    if len(propensity) and not ((propensity > 0) & (propensity <= 1)).all():
        raise ValueError("sampling propensities must lie in (0, 1]: an item with propensity 0 was never sampled")
    return 1.0 / propensity


def hajek_share(positive: Sequence[bool] | np.ndarray, propensity: Sequence[float] | np.ndarray) -> WeightedShare:
    """The Hájek estimate of the share of positives, with its interval (see the module docstring)."""
    y = np.asarray(positive, dtype=np.float64)
    pi = np.asarray(propensity, dtype=np.float64)
    if y.shape != pi.shape or y.ndim != 1:
        raise ValueError("positive and propensity must be 1-d and of equal length")
    n = len(y)
    if n == 0:
        return WeightedShare(0, 0, 0.0, 0.0, None, None, None, None, 0.0, NO_AUDITED)
    w = _weights(pi)
    total = float(w.sum())
    p = float(np.dot(w, y) / total)
    kish = effective_n(w)
    variance = float(np.sum(np.square(w * (y - p)))) / (total * total)
    interval_n = min(float(n), p * (1 - p) / variance) if 0 < p < 1 and variance > 0 else kish
    low, high = wilson_interval(p * interval_n, interval_n, z=Z_95) if interval_n > 0 else (0.0, 1.0)
    return WeightedShare(
        n=n,
        positives=int(y.sum()),
        n_eff=kish,
        total_weight=total,
        estimate=p,
        low=low,
        high=high,
        unweighted=float(y.mean()),
        interval_n=interval_n,
    )


# --- calibration of live scores against the audit sample ----------------------------------------


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    n: int
    weight: float
    mean_score: float
    observed: float  # weighted share of positives


@dataclass(frozen=True)
class Reliability:
    bins: list[ReliabilityBin]
    ece: float | None  # None without items
    n: int
    n_eff: float


def weighted_reliability(
    scores: Sequence[float] | np.ndarray,
    positive: Sequence[bool] | np.ndarray,
    propensity: Sequence[float] | np.ndarray,
    *,
    n_bins: int = 10,
) -> Reliability:
    """Reliability bins (equal width over [0, 1], right-closed as in `strata.weighted_ece`) and ECE.

    Each item weighs 1 / propensity, so the bins describe the traffic the model scored, not the
    audit sample's mix. ECE = Σ_bins (weight of bin / total) · |observed − mean score|.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=np.float64)
    w = _weights(np.asarray(propensity, dtype=np.float64))
    if not len(s):
        return Reliability([], None, 0, 0.0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges[1:-1], s, side="right"), 0, n_bins - 1)
    mass = np.bincount(which, weights=w, minlength=n_bins)
    counts = np.bincount(which, minlength=n_bins)
    score_sum = np.bincount(which, weights=w * s, minlength=n_bins)
    seen_sum = np.bincount(which, weights=w * y, minlength=n_bins)
    bins = [
        ReliabilityBin(
            low=float(edges[b]),
            high=float(edges[b + 1]),
            n=int(counts[b]),
            weight=float(mass[b]),
            mean_score=float(score_sum[b] / mass[b]),
            observed=float(seen_sum[b] / mass[b]),
        )
        for b in range(n_bins)
        if mass[b] > 0
    ]
    ece = float(np.abs(seen_sum - score_sum)[mass > 0].sum() / mass.sum())
    return Reliability(bins, ece if math.isfinite(ece) else None, len(s), effective_n(w))


# --- a simulated audit design with known truth (tests and bench/ipw_coverage.py) ------------------


@dataclass(frozen=True)
class AuditDesign:
    """N automatic decisions in score bands; band b holds `shares[b]` of them, a violation rate of
    `truth[b]`, and is audited at `rates[b]`. The true share of violations is Σ shares·truth."""

    n_decisions: int
    shares: tuple[float, ...]
    truth: tuple[float, ...]
    rates: tuple[float, ...]

    @property
    def true_share(self) -> float:
        return float(np.dot(self.shares, self.truth))


def simulate_audit(design: AuditDesign, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One draw: (positive, propensity) of the audited decisions, each decision sampled independently."""
    band = rng.choice(len(design.shares), size=design.n_decisions, p=np.asarray(design.shares) / sum(design.shares))
    positive = rng.random(design.n_decisions) < np.asarray(design.truth)[band]
    propensity = np.asarray(design.rates)[band]
    audited = rng.random(design.n_decisions) < propensity
    return positive[audited], propensity[audited]


def coverage(design: AuditDesign, *, draws: int, seed: int = 0) -> dict[str, float]:
    """Share of `draws` simulated audits whose interval holds the true share: for the Hájek interval,
    for Wilson on Kish's n_eff around the same estimate, and for the naive one (unweighted share,
    Wilson on the audited count); with mean errors."""
    rng = np.random.default_rng(seed)
    truth = design.true_share
    hits = naive_hits = kish_hits = 0
    errors, naive_errors, widths = [], [], []
    for _ in range(draws):
        positive, propensity = simulate_audit(design, rng)
        share = hajek_share(positive, propensity)
        if share.estimate is None or share.unweighted is None:
            continue
        hits += share.low <= truth <= share.high  # type: ignore[operator]
        naive_low, naive_high = wilson_interval(float(positive.sum()), len(positive))
        naive_hits += naive_low <= truth <= naive_high
        kish_low, kish_high = wilson_interval(share.estimate * share.n_eff, share.n_eff)  # type: ignore[arg-type]
        kish_hits += kish_low <= truth <= kish_high
        errors.append(share.estimate - truth)
        naive_errors.append(share.unweighted - truth)
        widths.append(share.high - share.low)  # type: ignore[operator]
    measured = max(len(errors), 1)
    return {
        "draws": len(errors),
        "coverage": hits / measured,
        "naive_coverage": naive_hits / measured,
        "kish_coverage": kish_hits / measured,
        "bias": float(np.mean(errors)) if errors else math.nan,
        "naive_bias": float(np.mean(naive_errors)) if naive_errors else math.nan,
        "mean_width": float(np.mean(widths)) if widths else math.nan,
    }
