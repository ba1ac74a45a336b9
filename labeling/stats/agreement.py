"""Inter-rater agreement: percent agreement, Cohen's and Fleiss' kappa, Krippendorff's alpha on any scale.

Plain Python + numpy (no Django), so benchmarks and reports use it without a configured project.

Input contract, shared by every metric here:
- `units` is a sequence of units (items), each a mapping annotator id → label. Labels are
  non-empty strings; they are nominal categories except where a `Scale` orders them (ordinal) or
  places them on a number line (interval), which only Krippendorff's alpha uses. A missing label
  is an absent key (a value of None counts as absent too). One label per annotator per unit:
  `units_from_triples` decides what happens to repeats.
- The categories are the labels that occur in `units`. A category nobody used changes none of
  the statistics below, so it need not be declared.
- m_u is the number of labels on unit u and n_uc the number of them equal to category c. A unit
  with m_u < 2 holds no pair of labels: every metric ignores it.

Degenerate data gives NaN, never an exception: no unit with two labels, one category only (the
chance agreement is 1, so kappa and alpha are 0/0), two annotators with no unit in common.
Arguments that cannot be right (an unknown option, a non-string label, confidence outside (0, 1),
the same annotator twice) raise `AgreementError`.

Every metric is computed from sums over units of a small per-unit vector (`_Additive`), which
makes the bootstrap one gather-and-sum per resample instead of a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import combinations
from typing import Literal, NamedTuple

import numpy as np

Unit = Mapping[str, str]
Units = Sequence[Unit]
Metric = Callable[[Units], float]
OnRepeat = Literal["first", "last", "error"]

# Unit draws per numpy call in the bootstrap: bounds the (resamples, units) index array to ~16 MB.
BOOTSTRAP_DRAWS_PER_CHUNK = 2_000_000


class AgreementError(ValueError):
    """An argument that no agreement statistic can be computed from (not degenerate data: that is NaN)."""


class ConfidenceInterval(NamedTuple):
    point: float  # the metric on the units given
    low: float  # percentile bootstrap bounds; NaN when no resample gave a finite value
    high: float


@dataclass(frozen=True)
class PairKappa:
    a: str  # a < b, so each pair appears once
    b: str
    kappa: float  # Cohen's kappa on the units both labelled; NaN when undefined (see cohen_kappa)
    overlap: int  # number of units labelled by both


Level = Literal["nominal", "ordinal", "interval"]
LEVELS: tuple[Level, ...] = ("nominal", "ordinal", "interval")


@dataclass(frozen=True)
class Scale:
    """How the categories of one variable relate to each other, for Krippendorff's alpha.

    - nominal: categories are equal or different, δ(c, k) = [c ≠ k]. `order` is not needed.
    - ordinal: `order` lists every category from lowest to highest; δ is Krippendorff's ordinal
      distance, δ(c, k) = (Σ_{g between c and k} n_g − (n_c + n_k)/2)², which depends on how many
      values fall between two categories, not on any number given to them.
    - interval: `order` lists every category and `values` its position on a number line (same
      length, any finite numbers); δ(c, k) = (v_c − v_k)².

    Build the last two with `Scale.ordinal(order)` and `Scale.interval({category: number})`.
    Invalid definitions (unknown level, a category twice, a missing or non-finite value) raise
    `AgreementError`.
    """

    level: Level = "nominal"
    order: tuple[str, ...] = ()
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise AgreementError(f"scale level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        for category in self.order:
            _check_label(category)
        if len(set(self.order)) != len(self.order):
            raise AgreementError(f"a category appears twice in the scale {list(self.order)}")
        if self.level != "nominal" and not self.order:
            raise AgreementError(f"an {self.level} scale needs its categories in order")
        if self.level == "interval":
            if len(self.values) != len(self.order):
                raise AgreementError(f"an interval scale needs one value per category, got {len(self.values)}")
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.values):
                raise AgreementError(f"interval values must be finite numbers, got {list(self.values)}")
        elif self.values:
            raise AgreementError(f"only an interval scale takes values; this one is {self.level}")

    @classmethod
    def ordinal(cls, order: Sequence[str]) -> Scale:
        return cls("ordinal", tuple(order))

    @classmethod
    def interval(cls, values: Mapping[str, float]) -> Scale:
        """Categories at the given positions; `order` comes out sorted by value."""
        ranked = sorted(values.items(), key=lambda item: item[1])
        return cls("interval", tuple(c for c, _ in ranked), tuple(v for _, v in ranked))

    def describe(self, name: Callable[[str], str] = str) -> str:
        """One line for people: "nominal", "ordinal: mild < strong", "interval: mild = 1, strong = 2";
        `name` turns a category into what people read (its display name)."""
        if self.level == "ordinal":
            return "ordinal: " + " < ".join(name(c) for c in self.order)
        if self.level == "interval":
            return "interval: " + ", ".join(f"{name(c)} = {v:g}" for c, v in zip(self.order, self.values, strict=True))
        return "nominal"


NOMINAL = Scale()


# --- building units ----------------------------------------------------------------------


def group_triples(
    triples: Iterable[tuple[str, str, str]], *, on_repeat: OnRepeat = "first"
) -> dict[str, dict[str, str]]:
    """item id → {annotator id → label}, from (item_id, annotator_id, label) triples, in first-seen order.

    A repeat is a second triple for the same (item, annotator). Agreement is between annotators,
    so each annotator has one label per item: `on_repeat="first"` keeps the earliest (as the
    dataset majority vote does), "last" the latest (e.g. a corrected decision), and "error"
    raises `AgreementError`.
    """
    if on_repeat not in ("first", "last", "error"):
        raise AgreementError(f"on_repeat must be 'first', 'last' or 'error', got {on_repeat!r}")
    grouped: dict[str, dict[str, str]] = {}
    for item, annotator, label in triples:
        _check_label(label)
        unit = grouped.setdefault(item, {})
        if annotator in unit:
            if on_repeat == "error":
                raise AgreementError(f"annotator {annotator!r} labelled item {item!r} more than once")
            if on_repeat == "first":
                continue
        unit[annotator] = label
    return grouped


def units_from_triples(
    triples: Iterable[tuple[str, str, str]], *, on_repeat: OnRepeat = "first"
) -> list[dict[str, str]]:
    """The units of `group_triples`, without their item ids."""
    return list(group_triples(triples, on_repeat=on_repeat).values())


def _check_label(label: object) -> None:
    if not isinstance(label, str) or not label:
        raise AgreementError(f"labels must be non-empty strings, got {label!r}")


# --- encoding ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    """Units as parallel integer arrays, one entry per (unit, annotator) label."""

    n_units: int
    categories: tuple[str, ...]  # sorted; label codes index this
    annotators: tuple[str, ...]  # sorted; annotator codes index this
    unit: np.ndarray  # (L,) int64, non-decreasing
    annotator: np.ndarray  # (L,) int64
    label: np.ndarray  # (L,) int64

    def counts(self) -> np.ndarray:
        """(N, K) float array of n_uc."""
        k = len(self.categories)
        flat = np.bincount(self.unit * k + self.label, minlength=self.n_units * k)
        return flat.reshape(self.n_units, k).astype(np.float64)


def _encode(units: Units) -> _Encoded:
    rows: list[tuple[int, str, str]] = []
    for index, unit in enumerate(units):
        for annotator, label in unit.items():
            if label is None:
                continue
            _check_label(label)
            rows.append((index, annotator, label))
    categories = tuple(sorted({label for _, _, label in rows}))
    annotators = tuple(sorted({annotator for _, annotator, _ in rows}))
    category_code = {c: i for i, c in enumerate(categories)}
    annotator_code = {a: i for i, a in enumerate(annotators)}
    return _Encoded(
        n_units=len(units),
        categories=categories,
        annotators=annotators,
        unit=np.array([u for u, _, _ in rows], dtype=np.int64),
        annotator=np.array([annotator_code[a] for _, a, _ in rows], dtype=np.int64),
        label=np.array([category_code[c] for _, _, c in rows], dtype=np.int64),
    )


# --- metrics as sums of per-unit statistics --------------------------------------------


@dataclass(frozen=True)
class _Additive:
    """A metric written as finalize(Σ_u per_unit[u]); all-zero rows are units the metric ignores."""

    per_unit: np.ndarray  # (N, p)
    finalize: Callable[[np.ndarray], np.ndarray]  # (..., p) sums → (...) metric values

    def value(self) -> float:
        return float(self.finalize(self.per_unit.sum(axis=0)))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is 0 (undefined, not infinite)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    safe = np.where(denominator == 0, 1.0, denominator)
    return np.where(denominator == 0, np.nan, numerator / safe)


def _pair_agreement(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P_u, m_u): the share of a unit's rater pairs that agree, Σ_c n_uc(n_uc − 1) / (m_u(m_u − 1)).

    P_u is 0 (not NaN) for units with m_u < 2; callers mask those units out.
    """
    m = counts.sum(axis=1)
    return (counts * (counts - 1)).sum(axis=1) / np.maximum(m * (m - 1), 1.0), m


def _percent_agreement_stat(encoded: _Encoded) -> _Additive:
    p_u, m = _pair_agreement(encoded.counts())
    pairable = (m >= 2).astype(np.float64)
    per_unit = np.column_stack([p_u * pairable, pairable])
    return _Additive(per_unit, lambda s: _ratio(s[..., 0], s[..., 1]))


def _fleiss_stat(encoded: _Encoded, n_raters: int | None = None) -> _Additive:
    if n_raters is not None and n_raters < 2:
        raise AgreementError(f"n_raters must be at least 2, got {n_raters}")
    counts = encoded.counts()
    p_u, m = _pair_agreement(counts)
    kept = (m >= 2) if n_raters is None else (m == n_raters)
    kept_f = kept.astype(np.float64)
    per_unit = np.column_stack([p_u * kept_f, kept_f, counts * kept_f[:, None]])
    return _Additive(per_unit, _fleiss_finalize)


def _fleiss_finalize(sums: np.ndarray) -> np.ndarray:
    observed = _ratio(sums[..., 0], sums[..., 1])
    category_totals = sums[..., 2:]
    shares = category_totals / np.maximum(category_totals.sum(axis=-1, keepdims=True), 1.0)
    chance = (shares**2).sum(axis=-1)
    # With no kept unit the shares are all 0, so chance is 0 and `observed` already carries the NaN.
    return _ratio(observed - chance, 1.0 - chance)


def _alpha_stat(encoded: _Encoded, scale: Scale = NOMINAL) -> _Additive:
    if not isinstance(scale, Scale):
        raise AgreementError(f"scale must be a Scale, got {scale!r}")
    if scale.level != "nominal":
        return _scaled_alpha_stat(encoded, scale)
    counts = encoded.counts()
    m = counts.sum(axis=1)
    pairable = m >= 2
    # Diagonal of unit u's contribution to the coincidence matrix: Σ_c n_uc(n_uc − 1) / (m_u − 1).
    matching = (counts * (counts - 1)).sum(axis=1) / np.maximum(m - 1, 1.0)
    per_unit = np.column_stack([matching * pairable, counts * pairable[:, None]])
    return _Additive(per_unit, _alpha_finalize)


def _scaled_alpha_stat(encoded: _Encoded, scale: Scale) -> _Additive:
    """Alpha on an ordered scale: per unit its K×K block of the coincidence matrix (K = scale size)."""
    position = {category: i for i, category in enumerate(scale.order)}
    off_scale = [c for c in encoded.categories if c not in position]
    if off_scale:
        raise AgreementError(
            f"labels {', '.join(map(repr, off_scale))} are not on the {scale.level} scale {list(scale.order)}"
        )
    k = len(scale.order)
    counts = np.zeros((encoded.n_units, k))
    counts[:, [position[c] for c in encoded.categories]] = encoded.counts()
    m = counts.sum(axis=1)
    pairable = (m >= 2).astype(np.float64)
    # o_ck of unit u = (n_uc n_uk − [c = k] n_uc) / (m_u − 1): ordered pairs of distinct raters.
    pairs = counts[:, :, None] * counts[:, None, :] - counts[:, :, None] * np.eye(k)[None, :, :]
    per_unit = (pairs / np.maximum(m - 1, 1.0)[:, None, None] * pairable[:, None, None]).reshape(-1, k * k)
    return _Additive(per_unit, partial(_scaled_alpha_finalize, scale=scale))


def _scaled_alpha_finalize(sums: np.ndarray, scale: Scale) -> np.ndarray:
    k = len(scale.order)
    coincidence = sums.reshape(*sums.shape[:-1], k, k)
    n_c = coincidence.sum(axis=-1)
    n = n_c.sum(axis=-1)
    distance = _distances(n_c, scale)
    observed = (coincidence * distance).sum(axis=(-2, -1))
    # Expected coincidences e_ck = n_c n_k / (n − 1) off the diagonal, where δ is 0 anyway.
    chance = (n_c[..., :, None] * n_c[..., None, :] * distance).sum(axis=(-2, -1))
    return 1.0 - _ratio((n - 1.0) * observed, chance)


def _distances(n_c: np.ndarray, scale: Scale) -> np.ndarray:
    """(..., K, K) squared distances δ(c, k) between scale categories, given the value totals n_c."""
    if scale.level == "interval":
        values = np.asarray(scale.values, dtype=np.float64)
        return np.broadcast_to((values[:, None] - values[None, :]) ** 2, (*n_c.shape, n_c.shape[-1]))
    # Ordinal: Σ_{g=c..k} n_g − (n_c + n_k)/2 for c ≤ k, from running totals, mirrored for c > k.
    running = np.cumsum(n_c, axis=-1)
    low = np.minimum.outer(np.arange(n_c.shape[-1]), np.arange(n_c.shape[-1]))
    high = np.maximum.outer(np.arange(n_c.shape[-1]), np.arange(n_c.shape[-1]))
    between = running[..., high] - running[..., low] + n_c[..., low]
    return (between - (n_c[..., :, None] + n_c[..., None, :]) / 2.0) ** 2


def _alpha_finalize(sums: np.ndarray) -> np.ndarray:
    matching, n_c = sums[..., 0], sums[..., 1:]
    n = n_c.sum(axis=-1)
    # α = 1 − D_o/D_e with D_o = (n − Σ_c o_cc)/n and D_e = (n² − Σ_c n_c²)/(n(n − 1)).
    return 1.0 - _ratio((n - 1.0) * (n - matching), n**2 - (n_c**2).sum(axis=-1))


def _cohen_stat(encoded: _Encoded, a: str, b: str) -> _Additive:
    if a == b:
        raise AgreementError(f"Cohen's kappa needs two different annotators, got {a!r} twice")
    k = len(encoded.categories)
    code = {name: i for i, name in enumerate(encoded.annotators)}
    label_a = _labels_of(encoded, code.get(a))
    label_b = _labels_of(encoded, code.get(b))
    both = (label_a >= 0) & (label_b >= 0)
    per_unit = np.zeros((encoded.n_units, k * k))
    per_unit[np.flatnonzero(both), label_a[both] * k + label_b[both]] = 1.0
    return _Additive(per_unit, partial(_cohen_finalize, k=k))


def _labels_of(encoded: _Encoded, annotator: int | None) -> np.ndarray:
    """(N,) label code that `annotator` gave each unit, −1 where none."""
    labels = np.full(encoded.n_units, -1, dtype=np.int64)
    if annotator is not None:
        mine = encoded.annotator == annotator
        labels[encoded.unit[mine]] = encoded.label[mine]
    return labels


def _cohen_finalize(sums: np.ndarray, k: int) -> np.ndarray:
    confusion = sums.reshape(*sums.shape[:-1], k, k)
    n = confusion.sum(axis=(-2, -1))
    observed = _ratio(np.trace(confusion, axis1=-2, axis2=-1), n)
    chance = _ratio((confusion.sum(axis=-1) * confusion.sum(axis=-2)).sum(axis=-1), n**2)
    return _ratio(observed - chance, 1.0 - chance)


# --- public metrics ----------------------------------------------------------------------


def percent_agreement(units: Units) -> float:
    """Mean over units of the share of agreeing rater pairs: P̄ = (1/|U₂|) Σ_{u∈U₂} P_u.

    P_u = Σ_c n_uc(n_uc − 1) / (m_u(m_u − 1)) is the fraction of the m_u(m_u − 1)/2 unordered
    pairs of distinct annotators on unit u who gave the same label, and U₂ is the set of units
    with m_u ≥ 2. Every unit weighs the same whatever its number of raters (a unit with 7 raters
    does not count 7 times as much as one with 3). With two annotators it is the share of
    co-labelled units on which they agree; it is also Fleiss' observed agreement P̄.
    NaN when no unit has two labels.
    """
    return _percent_agreement_stat(_encode(units)).value()


def cohen_kappa(units: Units, a: str, b: str) -> float:
    """Cohen's kappa between annotators `a` and `b` on the units both labelled.

    κ = (p_o − p_e) / (1 − p_e), p_o the share of those units where they agree, p_e = Σ_c
    p_a(c) p_b(c) with p_x(c) the share of the units that x labelled c. Equals scikit-learn's
    `cohen_kappa_score` on the two label lists. NaN when the two share no unit, or when p_e = 1
    (both used the same single category). `AgreementError` if a == b.
    """
    return _cohen_stat(_encode(units), a, b).value()


def fleiss_kappa(units: Units, *, n_raters: int | None = None) -> float:
    """Fleiss' kappa, κ = (P̄ − P_e) / (1 − P_e), over units with a varying or a fixed number of raters.

    P̄ is the mean of P_u (see `percent_agreement`), p_c = Σ_u n_uc / Σ_u m_u the pooled share of
    labels in category c, and P_e = Σ_c p_c². Fleiss (1971) assumes every unit has the same
    number n of raters; then these are exactly his formulas.

    - `n_raters=None` (default) keeps every unit with m_u ≥ 2: the generalisation to a varying
      number of raters in which P_u is computed with each unit's own m_u, P̄ weighs units
      equally and p_c pools all labels of the kept units. It reduces to Fleiss' kappa when m_u
      is constant.
    - `n_raters=n` keeps only the units with exactly n labels: the textbook statistic (and
      statsmodels' `fleiss_kappa`) on that subset.

    NaN when no unit is kept or P_e = 1 (a single category). `AgreementError` if n_raters < 2.
    """
    return _fleiss_stat(_encode(units), n_raters).value()


def krippendorff_alpha(units: Units, *, scale: Scale = NOMINAL) -> float:
    """Krippendorff's alpha with missing labels, from the coincidence matrix, on a nominal, ordinal or interval scale.

    Only pairable values count: units with m_u ≥ 2. The coincidence matrix is o_ck = Σ_u
    (number of ordered pairs of distinct raters of u labelling c then k) / (m_u − 1), so for
    nominal data o_cc = Σ_u n_uc(n_uc − 1)/(m_u − 1); n_c = Σ_k o_ck = Σ_u n_uc and n = Σ_c n_c.
    With the nominal distance δ(c, k) = [c ≠ k]:
        D_o = (1/n) Σ_{c≠k} o_ck = (n − Σ_c o_cc)/n,
        D_e = (1/(n(n − 1))) Σ_{c≠k} n_c n_k = (n² − Σ_c n_c²)/(n(n − 1)),
        α = 1 − D_o/D_e = 1 − (n − 1)(n − Σ_c o_cc)/(n² − Σ_c n_c²).
    Equals `krippendorff.alpha(reliability_data=..., level_of_measurement="nominal")`.

    On an ordinal or interval `scale` the same coincidence matrix, with o_ck = Σ_u (n_uc n_uk −
    [c = k] n_uc)/(m_u − 1), is weighed by the scale's distance δ(c, k) (see `Scale`):
        α = 1 − (n − 1) Σ_{c,k} o_ck δ(c, k) / Σ_{c,k} n_c n_k δ(c, k).
    Equals `krippendorff.alpha(..., level_of_measurement="ordinal" | "interval")` with the labels
    replaced by their rank or value. Every label must be on the scale (`AgreementError` names the
    ones that are not); categories of the scale nobody used change nothing.

    NaN when no unit has two labels or only one category occurs (D_e = 0).
    """
    return _alpha_stat(_encode(units), scale).value()


def pairwise_kappas(units: Units, *, min_overlap: int = 20) -> list[PairKappa]:
    """Cohen's kappa for every annotator pair that co-labelled at least `min_overlap` units.

    Sorted by overlap (largest first), then by annotator ids. Each kappa equals
    `cohen_kappa(units, pair.a, pair.b)`; all pairs are computed in one pass over the units.
    """
    if min_overlap < 1:
        raise AgreementError(f"min_overlap must be at least 1, got {min_overlap}")
    encoded = _encode(units)
    k, r = len(encoded.categories), len(encoded.annotators)
    _, pair_keys, cells = _co_labels(encoded)
    if not pair_keys.size:
        return []
    pairs, inverse = np.unique(pair_keys, return_inverse=True)
    confusion = np.bincount(inverse * k * k + cells, minlength=pairs.size * k * k).reshape(pairs.size, k * k)
    overlaps = confusion.sum(axis=1)
    kappas = _cohen_finalize(confusion.astype(np.float64), k)
    result = [
        PairKappa(encoded.annotators[key // r], encoded.annotators[key % r], float(kappa), int(overlap))
        for key, kappa, overlap in zip(pairs.tolist(), kappas, overlaps, strict=True)
        if overlap >= min_overlap
    ]
    return sorted(result, key=lambda p: (-p.overlap, p.a, p.b))


def _co_labels(encoded: _Encoded) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pair of labels on one unit (annotator codes i < j): the unit, pair key i·R + j, cell label_i·K + label_j."""
    k, r = len(encoded.categories), len(encoded.annotators)
    bounds = np.flatnonzero(np.diff(encoded.unit)) + 1
    units: list[int] = []
    keys: list[int] = []
    cells: list[int] = []
    split = partial(np.split, indices_or_sections=bounds)
    for unit, annotators, labels in zip(
        split(encoded.unit), split(encoded.annotator), split(encoded.label), strict=True
    ):
        if not unit.size:
            continue
        order = np.argsort(annotators)
        entries = list(zip(annotators[order].tolist(), labels[order].tolist(), strict=True))
        for (ann_i, label_i), (ann_j, label_j) in combinations(entries, 2):
            units.append(int(unit[0]))
            keys.append(ann_i * r + ann_j)
            cells.append(label_i * k + label_j)
    return (np.array(units, dtype=np.int64), np.array(keys, dtype=np.int64), np.array(cells, dtype=np.int64))


@dataclass(frozen=True)
class _PairCells:
    """Co-labels of the pairs that qualify for the mean kappa, ready for weighted counting.

    `unit` indexes the units that hold at least one such co-label (0..n_units-1), so a bootstrap
    draws only among them; `slot` is pair·K² + cell, the position in the stacked confusion matrices.
    """

    n_pairs: int
    k: int
    n_units: int
    unit: np.ndarray
    slot: np.ndarray

    def mean_kappa(self, weights: np.ndarray | None = None) -> float:
        size = self.n_pairs * self.k * self.k
        unit_weights = None if weights is None else weights[self.unit]
        confusion = np.bincount(self.slot, weights=unit_weights, minlength=size).reshape(self.n_pairs, self.k * self.k)
        kappas = _cohen_finalize(confusion.astype(np.float64), self.k)
        finite = kappas[np.isfinite(kappas)]
        return float(finite.mean()) if finite.size else math.nan


def _pair_cells(encoded: _Encoded, min_overlap: int) -> _PairCells:
    if min_overlap < 1:
        raise AgreementError(f"min_overlap must be at least 1, got {min_overlap}")
    k = len(encoded.categories)
    units, keys, cells = _co_labels(encoded)
    _, inverse, overlap = np.unique(keys, return_inverse=True, return_counts=True)
    kept_pair = overlap >= min_overlap
    renumber = np.cumsum(kept_pair) - 1
    kept = kept_pair[inverse] if keys.size else np.zeros(0, dtype=bool)
    counted_units, unit_code = np.unique(units[kept], return_inverse=True)
    return _PairCells(
        n_pairs=int(kept_pair.sum()),
        k=k,
        n_units=int(counted_units.size),
        unit=unit_code.astype(np.int64),
        slot=(renumber[inverse[kept]] * k * k + cells[kept]).astype(np.int64),
    )


def mean_pairwise_kappa(units: Units, *, min_overlap: int = 20) -> float:
    """The mean of Cohen's kappa over every annotator pair that co-labelled at least `min_overlap` units.

    Each pair's kappa is `cohen_kappa` on the units both labelled (as in `pairwise_kappas`); every
    qualifying pair weighs the same. Pairs whose kappa is undefined (both used one category) are
    left out of the mean. NaN when no pair qualifies. With `bootstrap_ci` the set of pairs is
    fixed by the units given and only items are resampled (the units holding a qualifying
    co-label), so the interval says how much the figure moves with other items, same reviewers.
    """
    return _pair_cells(_encode(units), min_overlap).mean_kappa()


# --- bootstrap ---------------------------------------------------------------------------

_ADDITIVE: dict[Callable[..., float], Callable[..., _Additive]] = {
    percent_agreement: _percent_agreement_stat,
    cohen_kappa: _cohen_stat,
    fleiss_kappa: _fleiss_stat,
    krippendorff_alpha: _alpha_stat,
}


def bootstrap_ci(
    metric: Metric, units: Units, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> ConfidenceInterval:
    """(point, low, high): the metric on `units` and a percentile bootstrap interval over units.

    Each resample draws as many units as there are, uniformly with replacement (items are the
    independent sampling unit; an annotator's labels inside one item are not resampled apart).
    The bounds are the (1 − confidence)/2 and (1 + confidence)/2 quantiles (numpy's linear
    interpolation) of the finite resampled values; a resample where the metric is undefined
    (NaN, e.g. every drawn unit has one category) is left out.

    `metric` is one of this module's metrics, or a `functools.partial` of one with its keyword
    arguments (`partial(cohen_kappa, a="r1", b="r2")`, `partial(fleiss_kappa, n_raters=3)`,
    `partial(krippendorff_alpha, scale=Scale.ordinal([...]))`).
    Those are resampled in vectorised form, and only over the units they count (units with two
    labels; for Cohen's kappa, the units both annotators labelled; for `mean_pairwise_kappa`, the
    units holding a co-label of a qualifying pair), so padding `units` with unlabelled items does
    not change the interval. Any other callable `units → float` works too,
    called once per resample on all of `units` (slow for large sets).

    Deterministic given `seed`. `AgreementError` for n_resamples < 1 or confidence outside (0, 1).
    """
    if n_resamples < 1:
        raise AgreementError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise AgreementError(f"confidence must be strictly between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    pair_cells = _pair_cells_for(metric, units)
    if pair_cells is not None:
        return _percentile_interval(pair_cells.mean_kappa(), _resample_pairs(pair_cells, n_resamples, rng), confidence)
    additive = _additive_for(metric, units)
    if additive is None:
        point = float(metric(units))
        estimates = _resample_generic(metric, units, n_resamples, rng)
    else:
        point = additive.value()
        estimates = _resample_additive(additive, n_resamples, rng)
    return _percentile_interval(point, estimates, confidence)


def _additive_for(metric: Metric, units: Units) -> _Additive | None:
    if isinstance(metric, partial):
        func, args, keywords = metric.func, metric.args, metric.keywords
    else:
        func, args, keywords = metric, (), {}
    builder = _ADDITIVE.get(func)
    if builder is None:
        return None
    if args:
        raise AgreementError("pass a metric's arguments to partial() by keyword (units come first)")
    return builder(_encode(units), **keywords)


def _pair_cells_for(metric: Metric, units: Units) -> _PairCells | None:
    func, keywords = (metric.func, metric.keywords) if isinstance(metric, partial) else (metric, {})
    if func is not mean_pairwise_kappa:
        return None
    if isinstance(metric, partial) and metric.args:
        raise AgreementError("pass a metric's arguments to partial() by keyword (units come first)")
    return _pair_cells(_encode(units), keywords.get("min_overlap", 20))


def _resample_pairs(cells: _PairCells, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    if cells.n_units == 0:
        return np.full(n_resamples, np.nan)
    estimates = [
        cells.mean_kappa(np.bincount(row, minlength=cells.n_units).astype(np.float64))
        for drawn in _draws(cells.n_units, n_resamples, rng)
        for row in drawn
    ]
    return np.array(estimates, dtype=np.float64)


def _draws(n_units: int, n_resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Blocks of resamples, each row n_units unit indices drawn with replacement; all rows in order.

    Both resampling paths read the same blocks, so resample i is the same units in either.
    """
    chunk = max(1, BOOTSTRAP_DRAWS_PER_CHUNK // max(n_units, 1))
    for start in range(0, n_resamples, chunk):
        yield rng.integers(0, n_units, size=(min(chunk, n_resamples - start), n_units))


def _resample_additive(additive: _Additive, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    # One contiguous array per statistic: gathering 1-d columns is several times faster than rows.
    columns = list(np.ascontiguousarray(additive.per_unit[additive.per_unit.any(axis=1)].T))
    n = columns[0].size if columns else 0
    if n == 0:
        return np.full(n_resamples, np.nan)
    blocks = [
        additive.finalize(np.column_stack([column[drawn].sum(axis=1) for column in columns]))
        for drawn in _draws(n, n_resamples, rng)
    ]
    return np.concatenate(blocks)


def _resample_generic(metric: Metric, units: Units, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    if not units:
        return np.full(n_resamples, np.nan)
    estimates = [
        metric([units[j] for j in row]) for drawn in _draws(len(units), n_resamples, rng) for row in drawn.tolist()
    ]
    return np.array(estimates, dtype=np.float64)


def _percentile_interval(point: float, estimates: np.ndarray, confidence: float) -> ConfidenceInterval:
    finite = estimates[np.isfinite(estimates)]
    if not finite.size:
        return ConfidenceInterval(point, math.nan, math.nan)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return ConfidenceInterval(point, float(low), float(high))
