"""Population stability index (PSI): how far a live distribution moved from a reference one.

Plain Python and numpy, no Django: the service (`activelearning.services.drift`) loads the
reference (the items a champion trained on) and the live window (recent decisions), and this
module bins and compares them.

    PSI = Σ_bins (live_i − ref_i) · ln(live_i / ref_i)

over the proportions of each bin, the bins fixed by the reference alone so that a later window is
always measured against the same cut points:

- numeric features (model score, text length): the reference's deciles (`quantile_edges`); equal
  cut points (many tied values) are merged, so a bin never has zero width;
- categorical features (language, source): the reference's categories, the rarest folded into
  `OTHER` past `max_categories`; a live value never seen in the reference falls in `OTHER`, and a
  missing one is `UNKNOWN`.

An empty bin would make ln(0) infinite: each proportion is floored at `EPSILON` (1e-4) before the
sum, the usual fix, which caps the contribution of one bin that empties or appears out of nothing
at about (p − 1e-4) · ln(p / 1e-4) — e.g. 0.73 for a bin holding 10 % on one side and none on the
other.

Thresholds (`WATCH`, `ALERT`) are the industry rule of thumb from credit scoring: PSI < 0.1 no
significant shift, 0.1–0.25 a moderate shift worth watching, ≥ 0.25 a significant shift that
calls for re-development (N. Siddiqi, *Credit Risk Scorecards*, Wiley 2006, ch. 8; their
statistical behaviour is studied in B. Yurdakul, *Statistical Properties of Population Stability
Index*, PhD dissertation, Western Michigan University, 2018). PSI is noisy on small samples:
with no change at all, it is about χ²(B − 1) · (1/n_ref + 1/n_live) distributed (Yurdakul), so
its expected value is (B − 1)(1/n_ref + 1/n_live) — 0.09 for ten bins and 200 items a side.
Below `MIN_COUNT` items on either side no level is given, so that noise alone rarely reaches the
watch level and almost never the alert one.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-4
WATCH = 0.1
ALERT = 0.25
MIN_COUNT = 200
N_QUANTILE_BINS = 10
MAX_CATEGORIES = 12
OTHER = "(other)"
UNKNOWN = "(unknown)"

OK, WATCHING, ALERTING, TOO_FEW = "ok", "watch", "alert", "too_few"


def psi(reference_counts: Sequence[float], live_counts: Sequence[float], *, epsilon: float = EPSILON) -> float:
    """PSI between two histograms over the same bins (counts; proportions are taken here).

    ValueError when the bins differ in number or a side is empty.
    """
    ref = np.asarray(reference_counts, dtype=float)
    live = np.asarray(live_counts, dtype=float)
    if ref.shape != live.shape or ref.ndim != 1:
        raise ValueError(f"histograms over different bins: {ref.shape} and {live.shape}")
    if ref.sum() <= 0 or live.sum() <= 0:
        raise ValueError("a histogram with no items has no distribution")
    p = np.maximum(ref / ref.sum(), epsilon)
    q = np.maximum(live / live.sum(), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def level(value: float | None, *, n_reference: int, n_live: int, min_count: int = MIN_COUNT) -> str:
    """ok / watch / alert by the thresholds above; too_few when either side has under `min_count` items."""
    if value is None or n_reference < min_count or n_live < min_count:
        return TOO_FEW
    if value >= ALERT:
        return ALERTING
    return WATCHING if value >= WATCH else OK


def quantile_edges(reference: Sequence[float], n_bins: int = N_QUANTILE_BINS) -> list[float]:
    """Interior cut points at the reference's 1/n … (n−1)/n quantiles, ties merged (strictly increasing)."""
    values = np.asarray(reference, dtype=float)
    if values.size == 0:
        return []
    # Cut points are observed reference values (the inverse of the empirical CDF), so ties stay tied.
    cuts = np.quantile(values, np.arange(1, n_bins) / n_bins, method="inverted_cdf")
    return sorted({float(c) for c in cuts})


def numeric_counts(values: Sequence[float], edges: Sequence[float]) -> list[int]:
    """Counts per bin: bin 0 is below edges[0], bin i holds edges[i-1] ≤ v < edges[i], the last is ≥ edges[-1]."""
    index = np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="right")
    return np.bincount(index, minlength=len(edges) + 1).astype(int).tolist()


def numeric_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["all"]
    bounds = [f"{e:.4g}" for e in edges]
    return [f"< {bounds[0]}", *(f"{lo} – {hi}" for lo, hi in itertools.pairwise(bounds)), f"≥ {bounds[-1]}"]


def categories(reference: Sequence[str | None], max_categories: int = MAX_CATEGORIES) -> list[str]:
    """The reference's categories, most frequent first, the tail past `max_categories` folded into OTHER."""
    counts = Counter(_category(v) for v in reference)
    ranked = [name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    if len(ranked) > max_categories:
        ranked = ranked[: max_categories - 1]
    return [*ranked, OTHER] if OTHER not in ranked else ranked


def categorical_counts(values: Sequence[str | None], bins: Sequence[str]) -> list[int]:
    position = {name: i for i, name in enumerate(bins)}
    other = position.get(OTHER)
    counts = [0] * len(bins)
    for value in values:
        i = position.get(_category(value), other)
        if i is not None:
            counts[i] += 1
    return counts


def _category(value: str | None) -> str:
    return UNKNOWN if value is None or value == "" else str(value)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's PSI, its level, and the two histograms it came from."""

    feature: str
    psi: float | None
    level: str
    bins: list[str]
    reference: list[float]  # proportions per bin
    live: list[float]
    n_reference: int
    n_live: int


def compare(
    feature: str, bins: list[str], reference_counts: list[int], live_counts: list[int], *, min_count: int = MIN_COUNT
) -> FeatureDrift:
    n_ref, n_live = sum(reference_counts), sum(live_counts)
    value = psi(reference_counts, live_counts) if n_ref and n_live else None
    return FeatureDrift(
        feature=feature,
        psi=None if value is None or math.isnan(value) else round(value, 6),
        level=level(value, n_reference=n_ref, n_live=n_live, min_count=min_count),
        bins=bins,
        reference=[c / n_ref if n_ref else 0.0 for c in reference_counts],
        live=[c / n_live if n_live else 0.0 for c in live_counts],
        n_reference=n_ref,
        n_live=n_live,
    )


def numeric_drift(
    feature: str,
    reference: Sequence[float],
    live: Sequence[float],
    *,
    n_bins: int = N_QUANTILE_BINS,
    min_count: int = MIN_COUNT,
) -> FeatureDrift:
    """PSI of a numeric feature over the reference's quantile bins."""
    edges = quantile_edges(reference, n_bins)
    return compare(
        feature,
        numeric_labels(edges),
        numeric_counts(reference, edges),
        numeric_counts(live, edges),
        min_count=min_count,
    )


def categorical_drift(
    feature: str,
    reference: Sequence[str | None],
    live: Sequence[str | None],
    *,
    max_categories: int = MAX_CATEGORIES,
    min_count: int = MIN_COUNT,
) -> FeatureDrift:
    """PSI of a categorical feature over the reference's categories (+ OTHER)."""
    bins = categories(reference, max_categories)
    return compare(
        feature, bins, categorical_counts(reference, bins), categorical_counts(live, bins), min_count=min_count
    )


def worst_level(levels: Sequence[str]) -> str:
    """The most severe of feature levels (alert > watch > ok > too_few)."""
    for name in (ALERTING, WATCHING, OK):
        if name in levels:
            return name
    return TOO_FEW
