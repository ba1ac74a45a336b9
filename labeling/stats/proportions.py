"""Intervals for a proportion, so a flag on a person is raised only when the data support it.

`wilson_interval` is the Wilson score interval (Wilson 1927; Brown, Cai & DasGupta 2001 recommend
it over the normal approximation for small n and proportions near 0 or 1). `successes` may be
fractional: a Dawid–Skene accuracy times the number of items it was estimated on. Treating that
as a binomial count ignores the uncertainty of the fitted true labels, so the interval is, if
anything, too narrow; a flag raised on its upper bound is still conservative about that count.
Plain Python (no Django).
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # two-sided 95 %


def wilson_interval(successes: float, n: float, *, z: float = Z_95) -> tuple[float, float]:
    """(low, high) of the Wilson score interval; (0, 1) when n is 0. n may be an effective sample size."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)
