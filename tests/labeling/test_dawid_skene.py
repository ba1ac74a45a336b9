"""Dawid–Skene EM: recovery of known annotator confusion, consensus, and convergence on ConvAbuse. No database."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from labeling.datasets import read_convabuse, read_toxic_spans
from labeling.stats.dawid_skene import (
    DawidSkeneError,
    check_fit,
    consensus_posterior,
    fit_dawid_skene,
    weighted_consensus,
)

CLASSES = ("harassment", "none", "spam")


@dataclass(frozen=True)
class Synthetic:
    triples: list[tuple[str, str, str]]
    truth: dict[str, str]
    confusion: dict[str, np.ndarray]  # annotator → true (K, K) confusion used to generate labels


def generate(n_items: int = 1500, seed: int = 0) -> Synthetic:
    """Three good annotators (90% accurate, errors spread evenly), one who labels at random and one
    adversary who gives the "next" class 80% of the time. Each labels an item with probability 0.7."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    good = np.full((k, k), 0.1 / (k - 1)) + np.eye(k) * (0.9 - 0.1 / (k - 1))
    adversary = np.full((k, k), 0.2 / (k - 1)) + np.roll(np.eye(k), 1, axis=1) * (0.8 - 0.2 / (k - 1))
    confusion = {"good1": good, "good2": good, "good3": good, "random": np.full((k, k), 1 / k), "adversary": adversary}
    truth = rng.choice(k, size=n_items, p=[0.2, 0.6, 0.2])
    triples = []
    for i, true_class in enumerate(truth.tolist()):
        for name, matrix in confusion.items():
            if rng.random() < 0.7:
                triples.append((f"item{i}", name, CLASSES[rng.choice(k, p=matrix[true_class])]))
    items_with_labels = {item for item, _, _ in triples}
    truth_by_item = {f"item{i}": CLASSES[c] for i, c in enumerate(truth.tolist()) if f"item{i}" in items_with_labels}
    return Synthetic(triples, truth_by_item, confusion)


def majority_vote(triples: list[tuple[str, str, str]]) -> dict[str, str]:
    """Plain majority; ties go to the first class in CLASSES order (max keeps the first maximum)."""
    votes: dict[str, Counter[str]] = {}
    for item, _, label in triples:
        votes.setdefault(item, Counter())[label] += 1
    return {item: max(CLASSES, key=counts.__getitem__) for item, counts in votes.items()}


def accuracy(predicted: dict[str, str], truth: dict[str, str]) -> float:
    return float(np.mean([predicted[item] == label for item, label in truth.items()]))


@pytest.fixture(scope="module")
def synthetic() -> Synthetic:
    return generate()


def test_it_recovers_each_annotators_accuracy_and_confusion(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples)
    assert model.converged and model.classes == CLASSES
    realised: dict[str, list[bool]] = {}
    for item, annotator, label in synthetic.triples:
        realised.setdefault(annotator, []).append(label == synthetic.truth[item])
    for summary in model.reliability():
        expected = float(np.mean(realised[summary.annotator]))
        assert summary.accuracy == pytest.approx(expected, abs=0.03), summary.annotator
        estimated = np.array([list(row.values()) for row in model.confusion_of(summary.annotator).values()])
        # Each row is estimated from ~200–600 labels: within 0.08 of the generating matrix.
        assert np.abs(estimated - synthetic.confusion[summary.annotator]).max() < 0.08, summary.annotator
    assert model.priors == pytest.approx([0.2, 0.6, 0.2], abs=0.04)


def test_it_beats_majority_vote_against_the_synthetic_truth(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples)
    ds_accuracy = accuracy(model.labels(), synthetic.truth)
    mv_accuracy = accuracy(majority_vote(synthetic.triples), synthetic.truth)
    print(f"\nsynthetic truth: Dawid–Skene {ds_accuracy:.3f}, majority vote {mv_accuracy:.3f}")
    assert ds_accuracy > mv_accuracy + 0.05
    assert ds_accuracy > 0.93


def test_log_likelihood_never_decreases_and_the_fit_is_deterministic(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples)
    trace = np.array(model.log_likelihood)
    assert (np.diff(trace) >= -1e-9 * np.abs(trace[:-1])).all()
    again = fit_dawid_skene(synthetic.triples)
    assert again.log_likelihood == model.log_likelihood
    assert np.array_equal(again.confusion, model.confusion) and np.array_equal(again.posteriors, model.posteriors)
    assert model.posteriors.sum(axis=1) == pytest.approx(np.ones(len(model.items)))


def test_max_iter_stops_an_unconverged_fit(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples, max_iter=2, tol=0.0)
    assert (model.n_iter, model.converged) == (2, False)


def test_weighted_consensus_trusts_good_annotators_and_reads_the_adversary(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples)
    # One good annotator outweighs the random one.
    assert weighted_consensus({"good1": "spam", "random": "harassment"}, model)[0] == "spam"
    # The adversary says the "next" class: its "spam" most likely means the truth is "none".
    label, confidence = weighted_consensus({"adversary": "spam"}, model)
    assert label == "none" and confidence > 0.5


def test_consensus_posterior_is_prior_times_confusion_columns(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples)
    good, adversary = model.annotators.index("good2"), model.annotators.index("adversary")
    unnormalised = model.priors * model.confusion[good][:, 0] * model.confusion[adversary][:, 2] ** 2
    posterior = consensus_posterior({"good2": "harassment", "adversary": ["spam", "spam"]}, model)
    assert list(posterior.values()) == pytest.approx(list(unnormalised / unnormalised.sum()), abs=1e-12)
    assert list(consensus_posterior({}, model).values()) == pytest.approx(list(model.priors), abs=1e-12)


def test_an_unknown_annotator_counts_as_a_typical_one(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples)
    unnormalised = model.priors * model.pooled_confusion()[:, 2]
    posterior = consensus_posterior({"newcomer": "spam"}, model)
    assert list(posterior.values()) == pytest.approx(list(unnormalised / unnormalised.sum()), abs=1e-12)


def test_a_declared_class_nobody_used_gets_only_the_floor() -> None:
    triples = [("i1", "a", "x"), ("i1", "b", "x"), ("i2", "a", "y"), ("i2", "b", "y")]
    model = fit_dawid_skene(triples, classes=["x", "y", "z"])
    assert model.classes == ("x", "y", "z") and model.priors[2] < model.priors[0]
    assert model.labels() == {"i1": "x", "i2": "y"}


def test_bad_input_raises_dawid_skene_error() -> None:
    with pytest.raises(DawidSkeneError, match="no labels"):
        fit_dawid_skene([])
    with pytest.raises(DawidSkeneError, match=r"\['maybe'\] are not among the classes"):
        fit_dawid_skene([("i1", "a", "maybe")], classes=["yes", "no"])
    with pytest.raises(DawidSkeneError, match="max_iter"):
        fit_dawid_skene([("i1", "a", "yes")], max_iter=0)
    with pytest.raises(DawidSkeneError, match="smoothing"):
        fit_dawid_skene([("i1", "a", "yes")], smoothing=-1.0)
    model = fit_dawid_skene([("i1", "a", "yes"), ("i2", "a", "no")])
    with pytest.raises(DawidSkeneError, match="'maybe' is not among the classes"):
        weighted_consensus({"a": "maybe"}, model)


def test_it_converges_on_convabuse_with_plausible_annotator_accuracies(convabuse_dir: Path) -> None:
    records = list(read_convabuse(convabuse_dir))
    # First answers only: the dataset's repeats measure consistency and do not vote (see datasets.py).
    triples = [
        (r.external_id, a.annotator, a.label) for r in records for a in r.annotations if not a.extra.get("repeat")
    ]
    model = fit_dawid_skene(triples)
    trace = np.array(model.log_likelihood)
    assert model.converged
    assert (np.diff(trace) >= -1e-9 * np.abs(trace[:-1])).all()
    majority = {r.external_id: r.label for r in records if r.label is not None}
    labels = model.labels()
    agreement = float(np.mean([labels[item] == label for item, label in majority.items()]))
    print(f"\nConvAbuse Dawid–Skene: {model.n_iter} iterations, log-likelihood {trace[0]:.1f} → {trace[-1]:.1f}")
    print("priors " + ", ".join(f"{c} {p:.3f}" for c, p in zip(model.classes, model.priors, strict=True)))
    print(f"agrees with the majority label on {agreement:.3f} of {len(majority)} untied examples")
    for summary in model.reliability():
        recall = ", ".join(f"{c} {r:.2f}" for c, r in summary.recall.items())
        print(f"{summary.annotator}: accuracy {summary.accuracy:.3f} over {summary.n_labels} labels; recall {recall}")
        assert 0.6 < summary.accuracy < 1.0, summary.annotator
    assert agreement > 0.9


def test_without_smoothing_the_objective_is_finite_and_the_fit_converges(convabuse_dir: Path) -> None:
    records = list(read_convabuse(convabuse_dir))
    triples = [
        (r.external_id, a.annotator, a.label) for r in records for a in r.annotations if not a.extra.get("repeat")
    ]
    model = fit_dawid_skene(triples, smoothing=0.0, prior_smoothing=0.0)
    assert np.isfinite(model.log_likelihood).all()
    assert model.converged and model.check.passed, model.check.summary()


def test_a_fit_that_ran_out_of_iterations_fails_its_check(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples, max_iter=2, tol=0.0)
    assert not model.check.passed
    assert model.check.problems[0].startswith("the fit did not settle within 2 iterations")


def test_a_collapsed_fit_on_a_sparse_crowd_says_so(toxic_spans_dir: Path) -> None:
    """First 300 Toxic Spans comments: 868 workers for 1,070 labels. Smoothing 1 collapses there."""
    triples = []
    for record in read_toxic_spans(toxic_spans_dir, limit=300):
        seen: set[str] = set()
        for answer in record.annotations:
            if answer.annotator not in seen:
                seen.add(answer.annotator)
                triples.append((record.external_id, answer.annotator, answer.label))
    collapsed = fit_dawid_skene(triples, smoothing=1.0, prior_smoothing=1.0)
    assert collapsed.converged  # converging is not enough: it converged to "everything is toxic"
    assert not collapsed.check.passed
    assert collapsed.check.problems[0] == "it labelled 100% of items toxic while 63% of votes are toxic"
    assert "just their share of 'toxic' labels" in collapsed.check.problems[1]
    assert fit_dawid_skene(triples).check.passed


def test_nan_and_a_falling_objective_fail_the_check(synthetic: Synthetic) -> None:
    model = fit_dawid_skene(synthetic.triples)
    assert model.check.passed
    broken = replace(model, priors=np.full_like(model.priors, np.nan))
    assert check_fit(broken).problems == ("the fitted class priors contain NaN or infinite values",)
    nan_trace = replace(model, log_likelihood=[-10.0, float("nan")], converged=False)
    assert "objective became nan at iteration 2" in check_fit(nan_trace).summary()
    falling = replace(model, log_likelihood=[-100.0, -90.0, -95.0, -95.0])
    assert check_fit(falling).problems[0].startswith("the fit's objective fell at iteration 3")
