"""Reading learning curves without flattering anyone: seed means, crossings that stay, intervals.

A learning curve is one `CurvePoint` per (strategy, seed, label count). A single seed's curve is
noisy, and the first label count at which a noisy curve touches a target comes early by chance;
so curves are averaged over seeds first (`mean_curve`), and the label count read is where the
mean curve reaches the target and stays there (`labels_to_stay`). `bootstrap_ratio` puts a
paired bootstrap interval over seeds on a strategy's ratio to a reference (random sampling), and
`declare_best` names a winner only when intervals separate it. Plain Python and numpy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


class CurveError(ValueError):
    """Curves that cannot be compared (different seeds)."""


@dataclass(frozen=True)
class CurvePoint:
    strategy: str
    seed: int
    labels: int
    macro_f1: float
    minority_f1: float
    minority_ap: float  # average precision (PR-AUC) of the minority class, sklearn
    minority_labelled: int  # how many labelled items belong to the minority class
    seconds: float  # wall time of this round (select + train + evaluate)


def mean_curve(points: Iterable[CurvePoint], metric: str = "macro_f1") -> list[tuple[int, float]]:
    """(labels, mean metric over seeds) per checkpoint, sorted by labels."""
    by_labels: dict[int, list[float]] = {}
    for p in points:
        by_labels.setdefault(p.labels, []).append(getattr(p, metric))
    return [(labels, float(np.mean(values))) for labels, values in sorted(by_labels.items())]


def labels_to_reach(curve: Sequence[tuple[int, float]], target: float) -> float | None:
    """Labels at which the curve first reaches `target`, interpolated linearly between checkpoints.

    None when it never does within the curve. On a noisy curve the first touch comes early by
    chance: read `labels_to_stay` on a seed-averaged curve instead.
    """
    previous: tuple[int, float] | None = None
    for labels, value in curve:
        if value >= target:
            if previous is None or math.isclose(value, previous[1]):
                return float(labels)
            fraction = (target - previous[1]) / (value - previous[1])
            return previous[0] + fraction * (labels - previous[0])
        previous = (labels, value)
    return None


def labels_to_stay(curve: Sequence[tuple[int, float]], target: float) -> float | None:
    """Labels from which the curve stays at or above `target` to its last checkpoint (interpolated
    at the last upward crossing); None when its last point is below the target."""
    if not curve or curve[-1][1] < target:
        return None
    start = len(curve) - 1
    while start > 0 and curve[start - 1][1] >= target:
        start -= 1
    return labels_to_reach(curve[max(0, start - 1) :], target)


def seed_matrix(points: Iterable[CurvePoint], metric: str) -> tuple[list[int], list[int], np.ndarray]:
    """(seeds, label checkpoints, (n_seeds, n_checkpoints) values) of one strategy's curves.

    Checkpoints are those every seed reached (lockstep runs stop together)."""
    by_seed: dict[int, dict[int, float]] = {}
    for p in points:
        by_seed.setdefault(p.seed, {})[p.labels] = getattr(p, metric)
    seeds = sorted(by_seed)
    labels = sorted(set.intersection(*(set(v) for v in by_seed.values())))
    return seeds, labels, np.asarray([[by_seed[s][n] for n in labels] for s in seeds])


@dataclass(frozen=True)
class RatioEstimate:
    """Labels a strategy needs over random's, read on seed-mean curves, with a bootstrap interval."""

    labels: float | None  # the strategy's labels_to_stay on its seed-mean curve
    reference_labels: float | None
    ratio: float  # inf when the strategy's mean curve does not stay above the target in its budget
    low: float  # percentile interval over seed resamples (inf when most resamples never get there)
    high: float
    resamples: int
    undefined: int  # resamples where neither curve stays above the target (left out)


def _ratio(labels: float | None, reference: float | None, reference_end: int) -> float:
    if labels is None:
        return math.inf
    if reference is None:  # random never got there: the ratio is at most this (conservative)
        return labels / reference_end
    return labels / reference


def bootstrap_ratio(
    points: Sequence[CurvePoint],
    reference: Sequence[CurvePoint],
    metric: str,
    target: float,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> RatioEstimate:
    """Ratio of labels_to_stay on seed-mean curves, strategy over reference, with an interval.

    Paired bootstrap over seeds: a resample draws seeds with replacement and averages *both*
    strategies' curves over the same draw (a seed gives both the same start), then reads both
    crossings. The interval is the percentile interval of the resampled ratios. A resample where
    the strategy never stays above the target counts as ratio inf; one where random never does
    counts as labels / random's last checkpoint (an upper bound, so it never flatters).
    """
    seeds, labels, values = seed_matrix(points, metric)
    ref_seeds, ref_labels, ref_values = seed_matrix(reference, metric)
    if seeds != ref_seeds:
        raise CurveError(f"strategy and reference have different seeds: {seeds} vs {ref_seeds}")
    ref_end = ref_labels[-1]

    def read(rows: np.ndarray) -> tuple[float | None, float | None]:
        curve = list(zip(labels, values[rows].mean(axis=0), strict=True))
        ref_curve = list(zip(ref_labels, ref_values[rows].mean(axis=0), strict=True))
        return labels_to_stay(curve, target), labels_to_stay(ref_curve, target)

    everything = np.arange(len(seeds))
    own, ref = read(everything)
    gen = np.random.default_rng(seed)
    ratios, undefined = [], 0
    for _ in range(resamples):
        draw = gen.integers(0, len(seeds), len(seeds))
        got, ref_got = read(draw)
        if got is None and ref_got is None:
            undefined += 1
            continue
        ratios.append(_ratio(got, ref_got, ref_end))
    ordered = np.sort(np.asarray(ratios)) if ratios else np.asarray([math.nan])
    tail = (1 - level) / 2
    low = ordered[math.floor(tail * (len(ordered) - 1))]
    high = ordered[math.ceil((1 - tail) * (len(ordered) - 1))]
    return RatioEstimate(own, ref, _ratio(own, ref, ref_end), float(low), float(high), resamples, undefined)


def declare_best(estimates: dict[str, RatioEstimate]) -> tuple[str | None, str]:
    """(best strategy or None, why): declared only when its interval lies wholly below 1 (random)
    and below every other strategy's interval; otherwise nothing is declared."""
    beating = {name: e for name, e in estimates.items() if e.high < 1.0}
    if not beating:
        return None, "no strategy beats random within the interval"
    best = min(beating, key=lambda name: beating[name].ratio)
    overlapping = [n for n, e in estimates.items() if n != best and e.low <= beating[best].high]
    if overlapping:
        return None, f"{best} beats random but its interval overlaps {', '.join(overlapping)}"
    return best, f"{best}'s interval excludes 1.0 and every other strategy's"
