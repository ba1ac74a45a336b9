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


def newcombe_difference_interval(k1: int, n1: int, k2: int, n2: int, *, z: float = Z_95) -> tuple[float, float, float]:
    """(p1 − p2, low, high): Newcombe's hybrid score interval for a difference of two independent
    proportions (Newcombe 1998, method 10), built from each group's Wilson interval. Needs n1, n2 > 0."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"need both groups non-empty, got n1={n1}, n2={n2}")
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, z=z)
    l2, u2 = wilson_interval(k2, n2, z=z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
