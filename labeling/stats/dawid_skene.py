"""Dawid–Skene: each reviewer's confusion matrix and each item's true-label posterior, by EM.

Plain Python + numpy (no Django). Fit one model per policy on its (item, annotator, label)
triples; the fitted confusion matrices weigh reviewers in `weighted_consensus` and are what a
lead sees as "how this reviewer labels each true class".

The model (Dawid & Skene, 1979): item i has a hidden true class t_i ~ Categorical(p) over K
classes; given t_i = k, each label annotator a gives it is drawn independently from row k of
a's confusion matrix π_a (π_a[k, l] = P(a says l | true class k)). A repeated label by the same
annotator on the same item is another independent draw, as in the original paper; callers
following the project's "repeats do not vote" rule pass first answers only.

EM, deterministic (no random start):
- start: T_ik = the share of item i's labels that are k (the soft majority vote);
- M-step: p_k ∝ Σ_i T_ik + α_p and π_a[k, l] ∝ Σ_{labels (i, a, l)} T_ik + α, i.e. the MAP
  estimate under Dirichlet priors, so that no probability is exactly 0 (additive smoothing);
- E-step: T_ik ∝ p_k Π_{labels (i, a, l)} π_a[k, l], computed in log space;
- stop when the objective improves by less than `tol` relative to its size, or after `max_iter`.
The objective — reported as `log_likelihood` — is the marginal log-likelihood of all labels
plus the smoothing's log-prior, α Σ log π + α_p Σ log p. EM never decreases it.

Caveat: the model needs annotators who each label many items. On a sparse crowd (Toxic Spans:
3,500 workers, median 10 labels each) the likelihood barely separates the classes and EM drifts
to a near one-class solution (prior ≈ 1 for "toxic"); pool rare annotators under one id, or
check `priors` against the vote shares before using such a fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


class DawidSkeneError(ValueError):
    """Input EM cannot run on: no labels, a label outside the declared classes, bad options."""


@dataclass(frozen=True)
class AnnotatorReliability:
    annotator: str
    n_labels: int
    accuracy: float  # expected share of this annotator's labels that equal the true class (posterior-weighted)
    recall: dict[str, float]  # class k → π[k, k], P(says k | truly k), smoothed


@dataclass
class DawidSkeneModel:
    classes: tuple[str, ...]  # sorted; the order of every class axis below
    annotators: tuple[str, ...]  # sorted; the order of `confusion`
    items: tuple[str, ...]  # first-seen order; the order of `posteriors`
    priors: np.ndarray  # (K,) p_k
    confusion: np.ndarray  # (A, K, K): confusion[a, k, l] = P(annotator a says l | true class k)
    posteriors: np.ndarray  # (N, K) P(true class k | all labels on item i)
    log_likelihood: list[float]  # objective after each E-step (see module docstring); non-decreasing
    converged: bool
    # Per-annotator posterior-weighted label counts, soft_counts[a, k, l] = Σ T_ik over a's labels l.
    soft_counts: np.ndarray = field(repr=False)

    @property
    def n_iter(self) -> int:
        return len(self.log_likelihood)

    def labels(self) -> dict[str, str]:
        """item → most probable true class (ties go to the first class in `classes`)."""
        best = self.posteriors.argmax(axis=1)
        return {item: self.classes[k] for item, k in zip(self.items, best.tolist(), strict=True)}

    def confusion_of(self, annotator: str) -> dict[str, dict[str, float]]:
        """true class → {given label → probability} for one annotator; KeyError if unknown."""
        matrix = self.confusion[self.annotators.index(annotator)]
        return {
            t: dict(zip(self.classes, row.tolist(), strict=True)) for t, row in zip(self.classes, matrix, strict=True)
        }

    def pooled_confusion(self) -> np.ndarray:
        """(K, K) confusion of a typical annotator: every annotator's matrix weighted by its label count."""
        weights = self.soft_counts.sum(axis=(1, 2))
        return np.tensordot(weights / weights.sum(), self.confusion, axes=1)

    def reliability(self) -> list[AnnotatorReliability]:
        """Per-annotator summary for leads, sorted by annotator id.

        `accuracy` = Σ_k soft_counts[a, k, k] / n_a: the expected share of a's labels that match
        the item's true class under the fitted posteriors (unsmoothed, on the items a labelled).
        `recall[k]` = π_a[k, k] from the smoothed confusion matrix.
        """
        summary = []
        for a, name in enumerate(self.annotators):
            n_labels = float(self.soft_counts[a].sum())
            summary.append(
                AnnotatorReliability(
                    annotator=name,
                    n_labels=round(n_labels),
                    accuracy=float(np.trace(self.soft_counts[a]) / n_labels),
                    recall={c: float(self.confusion[a, k, k]) for k, c in enumerate(self.classes)},
                )
            )
        return summary


@dataclass(frozen=True)
class _Observations:
    """Distinct (item, annotator, label) codes with how many times each was given."""

    item: np.ndarray  # (O,) int64
    annotator: np.ndarray  # (O,) int64
    label: np.ndarray  # (O,) int64
    count: np.ndarray  # (O,) float64


def fit_dawid_skene(
    triples: Iterable[tuple[str, str, str]],
    *,
    classes: Sequence[str] | None = None,
    smoothing: float = 1.0,
    prior_smoothing: float = 1.0,
    tol: float = 1e-8,
    max_iter: int = 200,
) -> DawidSkeneModel:
    """Fit Dawid–Skene by EM on (item_id, annotator_id, label) triples.

    `classes` fixes the label set (sorted); by default it is the sorted set of labels seen. A
    class nobody used gets only smoothing mass. `smoothing` (α) is added to every confusion cell
    and `prior_smoothing` (α_p) to every class count before normalising; both must be ≥ 0 and
    should be > 0 unless every annotator used every class. Converged means the objective rose
    by less than `tol · |objective|` in the last iteration; otherwise `max_iter` stopped it.
    Deterministic: the same triples in the same order give the same model.
    """
    _check_options(smoothing, prior_smoothing, tol, max_iter)
    items, annotators, class_names, obs = _encode(list(triples), classes)
    k, n_annotators = len(class_names), len(annotators)
    posteriors = _vote_shares(obs, len(items), k)
    trace: list[float] = []
    converged = False
    while len(trace) < max_iter:
        soft = _soft_counts(obs, posteriors, n_annotators, k)
        priors = _normalise(posteriors.sum(axis=0) + prior_smoothing)
        confusion = _normalise(soft + smoothing)
        posteriors, objective = _e_step(obs, priors, confusion, len(items))
        objective += smoothing * float(np.log(confusion).sum()) + prior_smoothing * float(np.log(priors).sum())
        if trace and objective - trace[-1] <= tol * abs(trace[-1]):
            trace.append(objective)
            converged = True
            break
        trace.append(objective)
    return DawidSkeneModel(
        classes=class_names,
        annotators=annotators,
        items=items,
        priors=priors,
        confusion=confusion,
        posteriors=posteriors,
        log_likelihood=trace,
        converged=converged,
        soft_counts=_soft_counts(obs, posteriors, n_annotators, k),
    )


def _check_options(smoothing: float, prior_smoothing: float, tol: float, max_iter: int) -> None:
    if smoothing < 0 or prior_smoothing < 0:
        raise DawidSkeneError(f"smoothing must be >= 0, got {smoothing} and {prior_smoothing}")
    if tol < 0:
        raise DawidSkeneError(f"tol must be >= 0, got {tol}")
    if max_iter < 1:
        raise DawidSkeneError(f"max_iter must be at least 1, got {max_iter}")


def _encode(
    triples: list[tuple[str, str, str]], classes: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], _Observations]:
    if not triples:
        raise DawidSkeneError("no labels to fit")
    seen = {label for _, _, label in triples}
    class_names = tuple(sorted(set(classes) if classes is not None else seen))
    unknown = seen - set(class_names)
    if unknown:
        raise DawidSkeneError(f"labels {sorted(unknown)} are not among the classes {list(class_names)}")
    items = tuple(dict.fromkeys(item for item, _, _ in triples))
    annotators = tuple(sorted({annotator for _, annotator, _ in triples}))
    item_code = {name: i for i, name in enumerate(items)}
    annotator_code = {name: i for i, name in enumerate(annotators)}
    class_code = {name: i for i, name in enumerate(class_names)}
    k, n_annotators = len(class_names), len(annotators)
    # Collapse repeats into counts: one key per distinct (item, annotator, label).
    keys = np.array(
        [(item_code[i] * n_annotators + annotator_code[a]) * k + class_code[c] for i, a, c in triples], dtype=np.int64
    )
    distinct, count = np.unique(keys, return_counts=True)
    obs = _Observations(
        item=distinct // (n_annotators * k),
        annotator=(distinct // k) % n_annotators,
        label=distinct % k,
        count=count.astype(np.float64),
    )
    return items, annotators, class_names, obs


def _vote_shares(obs: _Observations, n_items: int, k: int) -> np.ndarray:
    """(N, K) share of each item's labels in each class: the soft majority vote EM starts from."""
    votes = np.bincount(obs.item * k + obs.label, weights=obs.count, minlength=n_items * k).reshape(n_items, k)
    return votes / votes.sum(axis=1, keepdims=True)


def _soft_counts(obs: _Observations, posteriors: np.ndarray, n_annotators: int, k: int) -> np.ndarray:
    """(A, K, K): Σ over annotator a's labels l on items i of count · T_ik, at [a, k, l]."""
    counts = np.empty((n_annotators, k, k))
    for true_class in range(k):
        weights = obs.count * posteriors[obs.item, true_class]
        counts[:, true_class, :] = np.bincount(
            obs.annotator * k + obs.label, weights=weights, minlength=n_annotators * k
        ).reshape(n_annotators, k)
    return counts


def _normalise(counts: np.ndarray) -> np.ndarray:
    """Divide along the last axis so it sums to 1 (rows of zeros stay uniform rather than NaN)."""
    totals = counts.sum(axis=-1, keepdims=True)
    uniform = np.full_like(counts, 1.0 / counts.shape[-1])
    return np.divide(counts, totals, out=uniform, where=totals > 0)


def _e_step(obs: _Observations, priors: np.ndarray, confusion: np.ndarray, n_items: int) -> tuple[np.ndarray, float]:
    """Posteriors T (N, K) and the marginal log-likelihood Σ_i log Σ_k p_k Π π_a[k, l]^count."""
    k = priors.size
    with np.errstate(divide="ignore"):  # log 0 = −inf is right when smoothing is 0
        log_confusion = np.log(confusion)
        log_joint = np.tile(np.log(priors), (n_items, 1))
    for true_class in range(k):
        contribution = obs.count * log_confusion[obs.annotator, true_class, obs.label]
        log_joint[:, true_class] += np.bincount(obs.item, weights=contribution, minlength=n_items)
    top = log_joint.max(axis=1, keepdims=True)
    log_evidence = top[:, 0] + np.log(np.exp(log_joint - top).sum(axis=1))
    return np.exp(log_joint - log_evidence[:, None]), float(log_evidence.sum())


# --- consensus for a new item ------------------------------------------------------------


def consensus_posterior(
    labels_by_annotator: Mapping[str, str | Sequence[str]], model: DawidSkeneModel
) -> dict[str, float]:
    """P(true class | these labels) for one item under the fitted priors and confusion matrices.

    `labels_by_annotator` maps annotator id → label (or a sequence of labels, for repeats).
    An annotator the model never saw is treated as a typical one (`pooled_confusion`), so a new
    reviewer's label counts for what an average reviewer's would. With no labels it is the prior.
    `DawidSkeneError` for a label outside `model.classes`.
    """
    class_code = {name: i for i, name in enumerate(model.classes)}
    annotator_code = {name: i for i, name in enumerate(model.annotators)}
    log_pooled = np.log(model.pooled_confusion())
    log_posterior = np.log(model.priors).copy()
    for annotator, given in labels_by_annotator.items():
        matrix = np.log(model.confusion[annotator_code[annotator]]) if annotator in annotator_code else log_pooled
        for label in [given] if isinstance(given, str) else given:
            if label not in class_code:
                raise DawidSkeneError(f"label {label!r} is not among the classes {list(model.classes)}")
            log_posterior += matrix[:, class_code[label]]
    posterior = np.exp(log_posterior - log_posterior.max())
    posterior /= posterior.sum()
    return dict(zip(model.classes, posterior.tolist(), strict=True))


def weighted_consensus(
    labels_by_annotator: Mapping[str, str | Sequence[str]], model: DawidSkeneModel
) -> tuple[str, float]:
    """(label, confidence): the most probable true class for a new item and its posterior probability.

    Reliability-weighted: each label moves the posterior by log π_a[k, l], so a reviewer whose
    confusion matrix is near-diagonal outweighs a near-random one, and a systematically wrong
    one's labels are read for what they reveal. Ties go to the first class in `model.classes`.
    """
    posterior = consensus_posterior(labels_by_annotator, model)
    label = max(model.classes, key=lambda c: (posterior[c], -model.classes.index(c)))
    return label, posterior[label]
