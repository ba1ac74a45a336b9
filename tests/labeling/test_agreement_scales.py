"""Krippendorff's alpha on ordinal and interval scales, and the mean pairwise kappa, against reference packages.

References: `krippendorff.alpha(..., level_of_measurement=...)` (0.9.0, pinned in
requirements-dev.txt) and scikit-learn's `cohen_kappa_score`. No database.

Random reliability matrices (annotators × units) with missing values are turned into units of
string labels; the reference gets the same matrix with each label replaced by its rank (ordinal,
`value_domain` listing every rank so unused categories are in the domain too) or its value
(interval). Where the reference refuses the data (one value in the domain, no unit with two
coders) or divides 0/0, alpha must be NaN here.
"""

from __future__ import annotations

import itertools
import math
import warnings
from functools import partial
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from labeling.datasets import read_convabuse
from labeling.stats.agreement import (
    NOMINAL,
    AgreementError,
    Scale,
    bootstrap_ci,
    krippendorff_alpha,
    mean_pairwise_kappa,
    pairwise_kappas,
    units_from_triples,
)

TOL = 1e-9
Units = list[dict[str, str]]


def random_matrix(rng: np.random.Generator, n_categories: int) -> np.ndarray:
    """(annotators × units) category codes with a random share (0–80 %) of NaN."""
    shape = (int(rng.integers(2, 8)), int(rng.integers(1, 60)))
    matrix = rng.integers(0, n_categories, size=shape).astype(np.float64)
    matrix[rng.random(shape) < rng.random() * 0.8] = np.nan
    return matrix


def units_of(matrix: np.ndarray, categories: list[str]) -> Units:
    return [
        {f"r{r}": categories[int(matrix[r, u])] for r in range(matrix.shape[0]) if not np.isnan(matrix[r, u])}
        for u in range(matrix.shape[1])
    ]


def reference_alpha(data: np.ndarray, level: str, domain: np.ndarray | None = None) -> float:
    """krippendorff.alpha, with its refusals of degenerate data (ValueError) and 0/0 as NaN."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=domain))
    except ValueError:
        return math.nan


def assert_same(ours: float, reference: float) -> None:
    if math.isnan(reference):
        assert math.isnan(ours)
    else:
        assert ours == pytest.approx(reference, abs=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_alpha_equals_krippendorff_on_random_matrices_with_missing_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    compared = 0
    for _ in range(150):
        k = int(rng.integers(1, 7))
        categories = [f"level-{i}" for i in range(k)]
        matrix = random_matrix(rng, k)
        units = units_of(matrix, categories)
        ranks = np.arange(k, dtype=np.float64)
        values = np.round(rng.normal(size=k) * 4, 3)
        as_values = np.where(np.isnan(matrix), np.nan, values[np.nan_to_num(matrix).astype(int)])
        interval = Scale.interval(dict(zip(categories, values.tolist(), strict=True)))
        assert_same(krippendorff_alpha(units), reference_alpha(matrix, "nominal", ranks))
        ordinal = Scale.ordinal(categories)
        assert_same(krippendorff_alpha(units, scale=ordinal), reference_alpha(matrix, "ordinal", ranks))
        assert_same(krippendorff_alpha(units, scale=interval), reference_alpha(as_values, "interval"))
        compared += not math.isnan(krippendorff_alpha(units))
    assert compared > 100  # most matrices are not degenerate: the comparison is not vacuous


@pytest.mark.filterwarnings("error")
def test_one_category_and_units_with_one_rating() -> None:
    ordinal = Scale.ordinal(["low", "mid", "high"])
    one_category: Units = [{"a": "mid", "b": "mid"}, {"a": "mid", "c": "mid", "d": "mid"}]
    assert math.isnan(krippendorff_alpha(one_category, scale=ordinal))
    assert math.isnan(krippendorff_alpha([{"a": "low"}, {"b": "high"}], scale=ordinal))
    # Units with one rating add nothing: the same alpha with or without them, as in the reference.
    pairs: Units = [{"a": "low", "b": "mid"}, {"a": "high", "b": "high"}, {"a": "mid", "b": "mid", "c": "low"}]
    padded = [*pairs, {"a": "high"}, {"c": "low"}]
    matrix = np.array([[0, 2, 1, 2, np.nan], [1, 2, 1, np.nan, np.nan], [np.nan, np.nan, 0, np.nan, 0]])
    expected = reference_alpha(matrix, "ordinal", np.arange(3.0))
    assert krippendorff_alpha(padded, scale=ordinal) == pytest.approx(expected, abs=TOL)
    assert krippendorff_alpha(pairs, scale=ordinal) == pytest.approx(expected, abs=TOL)


def test_ordinal_alpha_credits_near_misses_that_nominal_alpha_counts_as_misses() -> None:
    scale = Scale.ordinal(["none", "mild", "strong", "very_strong"])
    near: Units = [{"a": "mild", "b": "strong"}, {"a": "none", "b": "none"}, {"a": "very_strong", "b": "strong"}] * 5
    far: Units = [{"a": "none", "b": "very_strong"}, {"a": "none", "b": "none"}, {"a": "mild", "b": "mild"}] * 5
    assert krippendorff_alpha(near, scale=scale) > krippendorff_alpha(near)
    assert krippendorff_alpha(far, scale=scale) < krippendorff_alpha(far)


def test_ordinal_and_interval_alpha_on_convabuse_severity_equal_the_reference(convabuse_dir: Path) -> None:
    """The 5-point is_abuse scale (1 … -3), each annotator's first answer per example."""
    rank = {"not_abusive": 1, "ambiguous": 0, "mild": -1, "strong": -2, "very_strong": -3}
    triples = [
        (record.external_id, answer.annotator, answer.severity or answer.label)
        for record in read_convabuse(convabuse_dir)
        for answer in record.annotations
        if not answer.extra.get("repeat")
    ]
    units = units_from_triples(triples, on_repeat="error")
    annotators = sorted({a for unit in units for a in unit})
    matrix = np.array([[rank[unit[a]] if a in unit else np.nan for unit in units] for a in annotators])
    order = sorted(rank, key=rank.__getitem__)
    for level, scale in [
        ("nominal", NOMINAL),
        ("ordinal", Scale.ordinal(order)),
        ("interval", Scale.interval({c: float(v) for c, v in rank.items()})),
    ]:
        assert krippendorff_alpha(units, scale=scale) == pytest.approx(reference_alpha(matrix, level), abs=TOL)


def test_a_label_off_the_scale_and_bad_scales_raise() -> None:
    with pytest.raises(AgreementError, match="'extreme' are not on the ordinal scale"):
        krippendorff_alpha([{"a": "low", "b": "extreme"}], scale=Scale.ordinal(["low", "high"]))
    with pytest.raises(AgreementError, match="level must be one of"):
        Scale("ratio", ("a", "b"))  # type: ignore[arg-type]
    with pytest.raises(AgreementError, match="appears twice"):
        Scale.ordinal(["low", "low"])
    with pytest.raises(AgreementError, match="needs its categories"):
        Scale("ordinal")
    with pytest.raises(AgreementError, match="finite numbers"):
        Scale.interval({"low": 0.0, "high": math.inf})
    with pytest.raises(AgreementError, match="one value per category"):
        Scale("interval", ("low", "high"), (1.0,))
    with pytest.raises(AgreementError, match="scale must be a Scale"):
        krippendorff_alpha([{"a": "x", "b": "y"}], scale="ordinal")  # type: ignore[arg-type]
    assert Scale.interval({"b": 2, "a": -1}).describe() == "interval: a = -1, b = 2"
    assert Scale.ordinal(["x", "y"]).describe() == "ordinal: x < y"


@pytest.mark.parametrize("seed", range(3))
def test_bootstrap_of_ordinal_alpha_equals_calling_it_per_resample(seed: int) -> None:
    rng = np.random.default_rng(seed)
    categories = ["a", "b", "c", "d"]
    units = units_of(random_matrix(rng, 4), categories)
    metric = partial(krippendorff_alpha, scale=Scale.ordinal(categories))
    vectorised = bootstrap_ci(metric, units, n_resamples=60, seed=seed)
    per_resample = bootstrap_ci(lambda us: metric(us), units, n_resamples=60, seed=seed)
    for ours, reference in zip(vectorised, per_resample, strict=True):
        assert_same(ours, reference)


# --- mean pairwise kappa -------------------------------------------------------------------


def reference_mean_kappa(units: Units, min_overlap: int) -> float:
    annotators = sorted({a for unit in units for a in unit})
    kappas = []
    for a, b in itertools.combinations(annotators, 2):
        both = [unit for unit in units if a in unit and b in unit]
        if len(both) >= min_overlap:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn warns, then returns NaN, where kappa is undefined
                kappa = cohen_kappa_score([u[a] for u in both], [u[b] for u in both])
            if not math.isnan(kappa):
                kappas.append(kappa)
    return float(np.mean(kappas)) if kappas else math.nan


@pytest.mark.parametrize("seed", range(3))
def test_mean_pairwise_kappa_equals_the_mean_of_sklearn_kappas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        units = units_of(random_matrix(rng, int(rng.integers(2, 5))), ["x", "y", "z", "w"])
        min_overlap = int(rng.integers(1, 8))
        assert_same(mean_pairwise_kappa(units, min_overlap=min_overlap), reference_mean_kappa(units, min_overlap))


def test_mean_pairwise_kappa_is_the_mean_of_the_listed_pairs() -> None:
    units: Units = [{"a": "x", "b": "y", "c": "x"}, {"a": "y", "b": "y", "c": "y"}, {"a": "x", "b": "x"}] * 8
    pairs = pairwise_kappas(units, min_overlap=10)
    assert mean_pairwise_kappa(units, min_overlap=10) == pytest.approx(np.mean([p.kappa for p in pairs]), abs=TOL)
    assert math.isnan(mean_pairwise_kappa(units, min_overlap=100))


def test_bootstrap_of_mean_kappa_equals_resampling_items_by_hand() -> None:
    rng = np.random.default_rng(7)
    units = units_of(random_matrix(rng, 3), ["x", "y", "z"])
    # Only units with a co-label of a qualifying pair are drawn; with min_overlap 1 that is every unit with 2 labels.
    counted = [unit for unit in units if len(unit) >= 2]
    interval = bootstrap_ci(partial(mean_pairwise_kappa, min_overlap=1), units, n_resamples=80, seed=5)
    draws = np.random.default_rng(5).integers(0, len(counted), size=(80, len(counted)))
    by_hand = np.array([reference_mean_kappa([counted[j] for j in row], 1) for row in draws])
    finite = by_hand[np.isfinite(by_hand)]
    assert interval.point == pytest.approx(reference_mean_kappa(units, 1), abs=TOL)
    assert (interval.low, interval.high) == pytest.approx(tuple(np.quantile(finite, [0.025, 0.975])), abs=TOL)
