"""Agreement metrics against reference implementations on real crowd labels, and their edge cases.

References: `krippendorff.alpha` (alpha), scikit-learn's `cohen_kappa_score` (Cohen's kappa),
statsmodels' `fleiss_kappa` and Fleiss's (1971) published table (Fleiss' kappa). No database.

How the real data becomes units:
- Toxic Spans: one unit per comment, one binary label per worker ("toxic"/"not_toxic" as
  `read_toxic_spans` derives it). No worker labelled a comment twice, which `on_repeat="error"`
  checks; the quiz comment with 357 answers is excluded by the reader.
- ConvAbuse: one unit per example, labels abusive/ambiguous/not_abusive. Some annotators
  answered an example twice (kept in the data for intra-annotator agreement): inter-annotator
  agreement uses each annotator's first answer, as the dataset's majority vote does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from fractions import Fraction
from functools import partial
from pathlib import Path

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss_kappa

from labeling.datasets import DatasetRecord, read_convabuse, read_toxic_spans
from labeling.stats.agreement import (
    AgreementError,
    ConfidenceInterval,
    Metric,
    bootstrap_ci,
    cohen_kappa,
    fleiss_kappa,
    group_triples,
    krippendorff_alpha,
    pairwise_kappas,
    percent_agreement,
    units_from_triples,
)

TOL = 1e-9

Units = list[dict[str, str]]


def first_answers(records: Iterable[DatasetRecord]) -> Iterator[tuple[str, str, str]]:
    for record in records:
        for annotation in record.annotations:
            if not annotation.extra.get("repeat"):
                yield record.external_id, annotation.annotator, annotation.label


@pytest.fixture(scope="module")
def toxic_units(toxic_spans_dir: Path) -> Units:
    return units_from_triples(first_answers(read_toxic_spans(toxic_spans_dir)), on_repeat="error")


@pytest.fixture(scope="module")
def toxic_prefix(toxic_units: Units) -> Units:
    """The first 2,000 comments: what `read_toxic_spans(root, limit=2000)` yields, without re-reading."""
    return toxic_units[:2000]


@pytest.fixture(scope="module")
def convabuse_units(convabuse_dir: Path) -> Units:
    return units_from_triples(first_answers(read_convabuse(convabuse_dir)), on_repeat="error")


# --- reference inputs --------------------------------------------------------------------


def categories_of(units: Units) -> list[str]:
    return sorted({label for unit in units for label in unit.values()})


def rater_matrix(units: Units) -> np.ndarray:
    """(annotators × units) category codes, NaN where an annotator did not label a unit."""
    categories, annotators = categories_of(units), sorted({a for unit in units for a in unit})
    row = {a: i for i, a in enumerate(annotators)}
    data = np.full((len(annotators), len(units)), np.nan)
    for j, unit in enumerate(units):
        for annotator, label in unit.items():
            data[row[annotator], j] = categories.index(label)
    return data


def slot_matrix(units: Units) -> np.ndarray:
    """(max raters × units): row i holds each unit's i-th label. Nominal alpha only sees each unit's
    multiset of labels, so this is the same reliability data without a 3,500-row mostly-NaN matrix."""
    categories = categories_of(units)
    data = np.full((max(map(len, units)), len(units)), np.nan)
    for j, unit in enumerate(units):
        for i, label in enumerate(unit.values()):
            data[i, j] = categories.index(label)
    return data


def count_table(units: Units) -> np.ndarray:
    categories = categories_of(units)
    return np.array([[list(unit.values()).count(c) for c in categories] for unit in units])


def brute_force_percent_agreement(units: Units) -> float:
    """Mean over units (with two labels) of the share of agreeing unordered rater pairs, by enumeration."""
    shares = []
    for unit in units:
        pairs = list(itertools.combinations(unit.values(), 2))
        if pairs:
            shares.append(sum(x == y for x, y in pairs) / len(pairs))
    return sum(shares) / len(shares)


def co_labels(units: Units, a: str, b: str) -> tuple[list[str], list[str]]:
    both = [unit for unit in units if a in unit and b in unit]
    return [unit[a] for unit in both], [unit[b] for unit in both]


# Fleiss (1971), Table 1: 30 patients, each diagnosed by 6 psychiatrists into depression,
# personality disorder, schizophrenia, neurosis or other; n_ij = psychiatrists choosing j for i.
FLEISS_1971 = [
    [0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0],
    [2, 0, 4, 0, 0], [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6],
    [1, 0, 0, 5, 0], [1, 1, 0, 4, 0], [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1],
    [0, 0, 5, 0, 1], [3, 0, 0, 1, 2], [5, 1, 0, 0, 0], [0, 2, 0, 4, 0], [1, 0, 2, 0, 3],
    [0, 0, 0, 0, 6], [0, 1, 0, 5, 0], [0, 2, 0, 1, 3], [2, 0, 0, 4, 0], [1, 0, 0, 4, 1],
    [0, 5, 0, 1, 0], [4, 0, 0, 0, 2], [0, 2, 0, 4, 0], [1, 0, 5, 0, 0], [0, 0, 0, 0, 6],
]  # fmt: skip
DIAGNOSES = ("depression", "personality_disorder", "schizophrenia", "neurosis", "other")


def units_from_counts(table: list[list[int]], categories: tuple[str, ...]) -> Units:
    units = []
    for row in table:
        labels = [c for c, n in zip(categories, row, strict=True) for _ in range(n)]
        units.append({f"rater{i}": label for i, label in enumerate(labels, start=1)})
    return units


# --- Krippendorff's alpha ----------------------------------------------------------------


@pytest.mark.slow
def test_alpha_matches_krippendorff_on_toxic_spans_worker_matrix(toxic_prefix: Units) -> None:
    expected = krippendorff.alpha(reliability_data=rater_matrix(toxic_prefix), level_of_measurement="nominal")
    assert krippendorff_alpha(toxic_prefix) == pytest.approx(expected, abs=TOL)


def test_alpha_matches_krippendorff_on_all_toxic_spans(toxic_units: Units) -> None:
    expected = krippendorff.alpha(reliability_data=slot_matrix(toxic_units), level_of_measurement="nominal")
    assert krippendorff_alpha(toxic_units) == pytest.approx(expected, abs=TOL)


def test_alpha_matches_krippendorff_on_convabuse(convabuse_units: Units) -> None:
    expected = krippendorff.alpha(reliability_data=rater_matrix(convabuse_units), level_of_measurement="nominal")
    assert krippendorff_alpha(convabuse_units) == pytest.approx(expected, abs=TOL)


def test_alpha_matches_krippendorffs_worked_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", §C: 4 coders, 12 units,
    # missing values; the published nominal alpha is 0.743.
    coders = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    units: Units = [{} for _ in range(12)]
    for coder, line in enumerate(coders):
        for unit, value in zip(units, line.split(), strict=True):
            if value != ".":
                unit[f"coder{coder}"] = value
    matrix = np.array([[np.nan if v == "." else float(v) for v in line.split()] for line in coders])
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units) == pytest.approx(
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal"), abs=TOL
    )


# --- Fleiss' kappa -----------------------------------------------------------------------


def test_fleiss_matches_the_published_psychiatric_diagnosis_example() -> None:
    units = units_from_counts(FLEISS_1971, DIAGNOSES)
    # By hand, with exact fractions: P̄ = 5/9; p_j = (26, 26, 30, 55, 43)/180, P_e = 3563/16200;
    # κ = (5/9 − 3563/16200) / (1 − 3563/16200) = 5437/12637 ≈ 0.4302, which Fleiss reports as .430.
    p_bar = Fraction(5, 9)
    p_e = sum(Fraction(total, 180) ** 2 for total in (26, 26, 30, 55, 43))
    exact = (p_bar - p_e) / (1 - p_e)
    assert exact == Fraction(5437, 12637)
    assert percent_agreement(units) == pytest.approx(float(p_bar), abs=1e-12)
    assert fleiss_kappa(units) == pytest.approx(float(exact), abs=1e-12)
    assert round(fleiss_kappa(units), 3) == 0.430
    assert fleiss_kappa(units, n_raters=6) == pytest.approx(statsmodels_fleiss_kappa(FLEISS_1971), abs=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("n_raters", [3, 7])
def test_fleiss_matches_statsmodels_on_toxic_spans_comments_with_n_workers(toxic_units: Units, n_raters: int) -> None:
    subset = [unit for unit in toxic_units if len(unit) == n_raters]
    assert len(subset) > 2000
    expected = statsmodels_fleiss_kappa(count_table(subset))
    assert fleiss_kappa(toxic_units, n_raters=n_raters) == pytest.approx(expected, abs=TOL)
    # The default generalisation is the textbook statistic when every unit has n raters.
    assert fleiss_kappa(subset) == pytest.approx(expected, abs=TOL)


def test_fleiss_matches_statsmodels_on_convabuse_examples_with_3_annotators(convabuse_units: Units) -> None:
    subset = [unit for unit in convabuse_units if len(unit) == 3]
    expected = statsmodels_fleiss_kappa(count_table(subset))
    assert fleiss_kappa(convabuse_units, n_raters=3) == pytest.approx(expected, abs=TOL)


def test_fleiss_with_varying_raters_uses_each_units_own_pairs_and_pooled_shares() -> None:
    units: Units = [{"a": "x", "b": "x"}, {"a": "x", "b": "y", "c": "y"}, {"a": "y", "c": "y", "d": "y"}, {"a": "x"}]
    # P_u = 1, 1/3, 1 (the single-label unit is ignored) → P̄ = 7/9; pooled shares x = 3/8, y = 5/8.
    p_bar, p_e = Fraction(7, 9), Fraction(3, 8) ** 2 + Fraction(5, 8) ** 2
    assert fleiss_kappa(units) == pytest.approx(float((p_bar - p_e) / (1 - p_e)), abs=1e-12)
    assert percent_agreement(units) == pytest.approx(float(p_bar), abs=1e-12)
    assert fleiss_kappa(units, n_raters=3) == pytest.approx(statsmodels_fleiss_kappa([[1, 2], [0, 3]]), abs=1e-12)


# --- percent agreement and Cohen's kappa -------------------------------------------------


def test_percent_agreement_matches_pair_enumeration(toxic_prefix: Units, convabuse_units: Units) -> None:
    for units in (toxic_prefix, convabuse_units):
        assert percent_agreement(units) == pytest.approx(brute_force_percent_agreement(units), abs=TOL)


def test_cohen_kappa_matches_sklearn_for_the_most_overlapping_convabuse_pair(convabuse_units: Units) -> None:
    top = pairwise_kappas(convabuse_units)[0]
    labels_a, labels_b = co_labels(convabuse_units, top.a, top.b)
    annotators = sorted({annotator for unit in convabuse_units for annotator in unit})
    assert (
        top.overlap
        == len(labels_a)
        == max(len(co_labels(convabuse_units, a, b)[0]) for a, b in itertools.combinations(annotators, 2))
    )
    expected = cohen_kappa_score(labels_a, labels_b)
    assert cohen_kappa(convabuse_units, top.a, top.b) == pytest.approx(expected, abs=TOL)
    assert top.kappa == pytest.approx(expected, abs=TOL)
    # With two annotators, percent agreement is the share of co-labelled units they agree on.
    pair_units = [{top.a: a, top.b: b} for a, b in zip(labels_a, labels_b, strict=True)]
    assert percent_agreement(pair_units) == pytest.approx(np.mean(np.array(labels_a) == np.array(labels_b)), abs=TOL)


def test_pairwise_kappas_match_sklearn_for_every_convabuse_pair(convabuse_units: Units) -> None:
    pairs = pairwise_kappas(convabuse_units, min_overlap=1)
    assert len(pairs) == 28  # 8 stable annotators, all pairs co-labelled something
    for pair in pairs:
        labels_a, labels_b = co_labels(convabuse_units, pair.a, pair.b)
        assert pair.overlap == len(labels_a)
        assert pair.kappa == pytest.approx(cohen_kappa_score(labels_a, labels_b), abs=TOL)


@pytest.mark.filterwarnings("ignore:.*cohen_kappa_score. is undefined")
def test_pairwise_kappas_match_sklearn_for_the_busiest_toxic_spans_worker_pairs(toxic_units: Units) -> None:
    # 3,500 crowd workers: no two share more than 18 comments, and many such pairs only ever said
    # "toxic" (p_e = 1), where both sklearn and we answer NaN.
    pairs = pairwise_kappas(toxic_units, min_overlap=10)
    assert len(pairs) > 20 and all(pair.overlap >= 10 for pair in pairs)
    for pair in pairs[:20]:
        labels_a, labels_b = co_labels(toxic_units, pair.a, pair.b)
        assert (pair.overlap, pair.a < pair.b) == (len(labels_a), True)
        expected = cohen_kappa_score(labels_a, labels_b, labels=["not_toxic", "toxic"])
        assert pair.kappa == pytest.approx(expected, abs=TOL, nan_ok=True)


# --- bootstrap ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [percent_agreement, fleiss_kappa, krippendorff_alpha])
def test_bootstrap_interval_contains_the_point_estimate(convabuse_units: Units, metric: Metric) -> None:
    point, low, high = bootstrap_ci(metric, convabuse_units)
    assert point == pytest.approx(metric(convabuse_units), abs=1e-12)
    assert low < point < high


def test_bootstrap_of_a_pair_kappa_resamples_only_their_shared_units(convabuse_units: Units) -> None:
    top = pairwise_kappas(convabuse_units)[0]
    metric = partial(cohen_kappa, a=top.a, b=top.b)
    shared = [unit for unit in convabuse_units if top.a in unit and top.b in unit]
    interval = bootstrap_ci(metric, convabuse_units, n_resamples=300)
    assert interval.low < interval.point < interval.high
    assert interval == bootstrap_ci(metric, shared, n_resamples=300)


def opaque(metric: Metric) -> Metric:
    """The same metric behind a plain function, which bootstrap_ci can only call once per resample."""

    def call(units: Sequence[Mapping[str, str]]) -> float:
        return metric(units)

    return call


def test_bootstrap_vectorised_path_equals_calling_the_metric_per_resample(convabuse_units: Units) -> None:
    units = convabuse_units[:300]  # every ConvAbuse example has at least two annotators
    assert all(len(unit) >= 2 for unit in units)
    for metric in (krippendorff_alpha, fleiss_kappa, percent_agreement):
        vectorised = bootstrap_ci(metric, units, n_resamples=40, seed=7)
        called = bootstrap_ci(opaque(metric), units, n_resamples=40, seed=7)
        assert vectorised == pytest.approx(called, abs=1e-12)


def test_bootstrap_is_deterministic_given_the_seed(convabuse_units: Units) -> None:
    first = bootstrap_ci(krippendorff_alpha, convabuse_units, n_resamples=200, seed=3)
    assert bootstrap_ci(krippendorff_alpha, convabuse_units, n_resamples=200, seed=3) == first
    assert bootstrap_ci(krippendorff_alpha, convabuse_units, n_resamples=200, seed=4) != first


def test_bootstrap_interval_narrows_with_more_units(toxic_units: Units) -> None:
    small = bootstrap_ci(krippendorff_alpha, toxic_units[:1000], n_resamples=300)
    large = bootstrap_ci(krippendorff_alpha, toxic_units, n_resamples=300)
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


@pytest.mark.slow
def test_full_bootstrap_of_both_datasets_brackets_the_point(toxic_units: Units, convabuse_units: Units) -> None:
    """The full-size bootstrap (its timing is bench/agreement.py's: 1000 alpha resamples over all
    of Toxic Spans within 10 s)."""
    for units in (toxic_units, convabuse_units):
        for metric in (krippendorff_alpha, fleiss_kappa, percent_agreement):
            point, low, high = bootstrap_ci(metric, units, n_resamples=1000)
            assert low <= point <= high, (metric.__name__, point, low, high)


# --- building units ----------------------------------------------------------------------


def test_repeats_keep_the_first_or_last_answer_or_raise() -> None:
    triples = [("i1", "ann", "spam"), ("i1", "bob", "ok"), ("i1", "ann", "ok"), ("i2", "bob", "spam")]
    assert group_triples(triples) == {"i1": {"ann": "spam", "bob": "ok"}, "i2": {"bob": "spam"}}
    assert group_triples(triples, on_repeat="last")["i1"] == {"ann": "ok", "bob": "ok"}
    with pytest.raises(AgreementError, match="'ann' labelled item 'i1' more than once"):
        group_triples(triples, on_repeat="error")
    assert units_from_triples(triples) == [{"ann": "spam", "bob": "ok"}, {"bob": "spam"}]


# --- degenerate input: NaN or AgreementError, never ZeroDivisionError or a numpy warning ----


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize(
    "units",
    [
        [],  # no units
        [{"a": "x"}, {"b": "y"}, {}],  # fewer than two raters on every unit
        [{"a": "x", "b": "x"}, {"a": "x", "c": "x", "d": "x"}],  # one category only
    ],
    ids=["no-units", "single-raters", "one-category"],
)
def test_undefined_metrics_are_nan(units: Units) -> None:
    assert np.isnan(krippendorff_alpha(units))
    assert np.isnan(fleiss_kappa(units))
    assert np.isnan(cohen_kappa(units, "a", "b"))
    interval = bootstrap_ci(krippendorff_alpha, units, n_resamples=20)
    assert np.isnan(interval.point) and np.isnan(interval.low) and np.isnan(interval.high)


@pytest.mark.filterwarnings("error")
def test_percent_agreement_is_defined_for_one_category_but_not_without_pairs() -> None:
    assert percent_agreement([{"a": "x", "b": "x"}]) == 1.0
    assert np.isnan(percent_agreement([{"a": "x"}]))
    assert np.isnan(percent_agreement([]))


@pytest.mark.filterwarnings("error")
def test_cohen_kappa_is_nan_without_shared_units_and_an_error_for_one_annotator() -> None:
    units: Units = [{"a": "x", "b": "y"}, {"a": "y", "c": "y"}]
    assert np.isnan(cohen_kappa(units, "b", "c"))
    assert np.isnan(cohen_kappa(units, "a", "nobody"))
    pairs = pairwise_kappas(units, min_overlap=1)
    assert [(pair.a, pair.b, pair.overlap) for pair in pairs] == [("a", "b", 1), ("a", "c", 1)]
    assert pairs[0].kappa == 0.0 and np.isnan(pairs[1].kappa)  # a–c agree on "y" only: p_e = 1
    with pytest.raises(AgreementError, match="two different annotators"):
        cohen_kappa(units, "a", "a")


@pytest.mark.filterwarnings("error")
def test_resamples_where_the_metric_is_undefined_are_left_out() -> None:
    # Most resamples of these two units draw one unit twice: a single category, alpha undefined.
    units: Units = [{"a": "x", "b": "x"}, {"a": "y", "b": "y"}]
    point, low, high = bootstrap_ci(krippendorff_alpha, units, n_resamples=200)
    assert point == 1.0 and (low, high) == (1.0, 1.0)


def test_bad_arguments_raise_agreement_error() -> None:
    units: Units = [{"a": "x", "b": "y"}]
    with pytest.raises(AgreementError, match="n_resamples"):
        bootstrap_ci(krippendorff_alpha, units, n_resamples=0)
    with pytest.raises(AgreementError, match="confidence"):
        bootstrap_ci(krippendorff_alpha, units, confidence=1.0)
    with pytest.raises(AgreementError, match="by keyword"):
        bootstrap_ci(partial(fleiss_kappa, units), units)
    with pytest.raises(AgreementError, match="n_raters"):
        fleiss_kappa(units, n_raters=1)
    with pytest.raises(AgreementError, match="min_overlap"):
        pairwise_kappas(units, min_overlap=0)
    with pytest.raises(AgreementError, match="non-empty strings"):
        krippendorff_alpha([{"a": 1, "b": "y"}])  # type: ignore[dict-item]
    with pytest.raises(AgreementError, match="on_repeat"):
        group_triples([], on_repeat="newest")  # type: ignore[arg-type]


def test_missing_labels_may_be_none() -> None:
    with_none = [{"a": "x", "b": None, "c": "x"}, {"a": "y", "b": "y"}]
    without = [{"a": "x", "c": "x"}, {"a": "y", "b": "y"}]
    assert krippendorff_alpha(with_none) == krippendorff_alpha(without)  # type: ignore[arg-type]
    assert isinstance(bootstrap_ci(percent_agreement, without), ConfidenceInterval)
