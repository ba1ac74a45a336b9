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
  estimate under Dirichlet priors (α = α_p = 0 is the maximum-likelihood fit of the paper and of
  crowd-kit); every probability is then floored at PROBABILITY_FLOOR, so no label is impossible;
- E-step: T_ik ∝ p_k Π_{labels (i, a, l)} π_a[k, l], computed in log space;
- stop when the objective improves by less than `tol` relative to its size, or after `max_iter`.
The objective — reported as `log_likelihood` — is the marginal log-likelihood of all labels
plus the smoothing's log-prior, α Σ log π + α_p Σ log p (nothing when α = α_p = 0). EM never
decreases it.

Why no smoothing by default (measured on the shipped data, first answers only): on Toxic Spans
(3,463 workers, about 17 labels each) α = α_p = 1 pulls every sparse worker's matrix towards
uniform, and EM drifts to "every item is toxic" with each worker's accuracy equal to their share
of toxic labels; unsmoothed, it converges to priors 0.285 / 0.715 (not toxic / toxic) with 63 %
of votes toxic. On ConvAbuse the unsmoothed fit gives crowd-kit's `DawidSkene` per-annotator
accuracies to < 0.001; holding the prior at the vote shares instead was 0.04 away.

A fit can still fail on data it was not measured on, so every fit carries `check`
(`check_fit`): convergence (objective finite, rising, settled within `max_iter`) and degeneracy
(one class on almost every item while the votes are split; accuracies that are only label
shares; NaN anywhere). Callers must not use a fit whose check did not pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PROBABILITY_FLOOR = 1e-10  # no prior or confusion cell below it: a label is never impossible
# Degeneracy bars of `check_fit`. A fit that gives one class to ONE_CLASS_ITEMS of the items while
# that class has less than ONE_CLASS_VOTES of the votes has collapsed; so has one whose annotators'
# accuracies are, to within SHARE_GAP on average, their shares of one class's labels.
ONE_CLASS_ITEMS = 0.99
ONE_CLASS_VOTES = 0.90
SHARE_GAP = 0.02
# A step of EM that lowers the objective by more than this (relative) is a computation gone wrong.
MONOTONE_SLACK = 1e-8


class DawidSkeneError(ValueError):
    """Input EM cannot run on: no labels, a label outside the declared classes, bad options."""


@dataclass(frozen=True)
class FitCheck:
    """Whether a fit may be used, and if not, why — in sentences a policy lead can act on."""

    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return "checks passed" if self.passed else "; ".join(self.problems)


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
    max_iter: int = 0  # the iteration budget the fit had
    tol: float = 0.0  # its relative convergence tolerance
    check: FitCheck = field(default_factory=lambda: FitCheck(("not checked",)))

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
    smoothing: float = 0.0,
    prior_smoothing: float = 0.0,
    tol: float = 1e-8,
    max_iter: int = 2000,
) -> DawidSkeneModel:
    """Fit Dawid–Skene by EM on (item_id, annotator_id, label) triples, and check the fit.

    `classes` fixes the label set (sorted); by default it is the sorted set of labels seen. A
    class nobody used gets only smoothing mass (or the floor). `smoothing` (α) is added to every
    confusion cell and `prior_smoothing` (α_p) to every class count before normalising; both
    must be ≥ 0 (see the module docstring for why both default to 0). Converged means the
    objective rose by less than `tol · |objective|` in the last iteration; otherwise `max_iter`
    stopped it. The returned model's `check` says whether it may be used.
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
        priors = _floored(_normalise(posteriors.sum(axis=0) + prior_smoothing))
        confusion = _floored(_normalise(soft + smoothing))
        posteriors, objective = _e_step(obs, priors, confusion, len(items))
        # 0 · log p is 0 here, not NaN: with no smoothing the log-prior term is absent.
        if smoothing > 0:
            objective += smoothing * float(np.log(confusion).sum())
        if prior_smoothing > 0:
            objective += prior_smoothing * float(np.log(priors).sum())
        if not np.isfinite(objective):
            trace.append(objective)
            break
        if trace and abs(objective - trace[-1]) <= tol * abs(trace[-1]):
            trace.append(objective)
            converged = True
            break
        trace.append(objective)
    model = DawidSkeneModel(
        classes=class_names,
        annotators=annotators,
        items=items,
        priors=priors,
        confusion=confusion,
        posteriors=posteriors,
        log_likelihood=trace,
        converged=converged,
        soft_counts=_soft_counts(obs, posteriors, n_annotators, k),
        max_iter=max_iter,
        tol=tol,
    )
    model.check = check_fit(model)
    return model


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


def _floored(probabilities: np.ndarray) -> np.ndarray:
    """Raise every probability to at least PROBABILITY_FLOOR and renormalise the last axis."""
    return _normalise(np.maximum(probabilities, PROBABILITY_FLOOR))


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


# --- is the fit usable? ------------------------------------------------------------------


def check_fit(model: DawidSkeneModel) -> FitCheck:
    """Convergence and degeneracy checks of a fitted model; each failure is one plain sentence.

    Convergence: the objective is a finite number at every iteration, never falls by more than
    MONOTONE_SLACK (relative) from one iteration to the next, and settled within `max_iter`.
    Degeneracy: no NaN in priors, confusion or posteriors; the fit does not give one class to
    ONE_CLASS_ITEMS or more of the items while that class has under ONE_CLASS_VOTES of the
    votes; and the annotators' accuracies are not (to within SHARE_GAP, label-weighted) their
    shares of one class's labels, which is what a collapsed fit reports as "accuracy".
    """
    problems = _convergence_problems(model)
    arrays = {"class priors": model.priors, "confusion matrices": model.confusion, "item posteriors": model.posteriors}
    broken = [name for name, values in arrays.items() if not np.isfinite(values).all()]
    if broken:
        problems.append(f"the fitted {' and '.join(broken)} contain NaN or infinite values")
        return FitCheck(tuple(problems))
    problems += _collapse_problems(model)
    return FitCheck(tuple(problems))


def _convergence_problems(model: DawidSkeneModel) -> list[str]:
    trace = np.asarray(model.log_likelihood, dtype=float)
    if not np.isfinite(trace).all():
        first = int(np.flatnonzero(~np.isfinite(trace))[0]) + 1
        return [f"the fit's objective became {trace[first - 1]} at iteration {first}, so the fit is numerically broken"]
    problems = []
    drops = -np.diff(trace) / np.maximum(np.abs(trace[:-1]), 1e-300)
    if drops.size and drops.max() > MONOTONE_SLACK:
        at = int(drops.argmax()) + 2
        problems.append(
            f"the fit's objective fell at iteration {at} (by {drops.max():.1e} of its size), "
            "which EM cannot do when it works; the estimates are not trustworthy"
        )
    if not model.converged:
        last = abs(trace[-1] - trace[-2]) / abs(trace[-2]) if trace.size > 1 else float("nan")
        problems.append(
            f"the fit did not settle within {model.max_iter} iterations "
            f"(last change {last:.1e} of the objective; it needs under {model.tol:.0e})"
        )
    return problems


def _collapse_problems(model: DawidSkeneModel) -> list[str]:
    """One class everywhere, or accuracies that are label shares, while the votes are split."""
    said = model.soft_counts.sum(axis=1)  # (A, K): how many of each label each annotator gave
    n_labels = said.sum(axis=1)
    vote_share = said.sum(axis=0) / n_labels.sum()
    item_share = np.bincount(model.posteriors.argmax(axis=1), minlength=len(model.classes)) / len(model.items)
    dominant = int(item_share.argmax())
    name = model.classes[dominant]
    if vote_share[dominant] >= ONE_CLASS_VOTES:
        return []  # the votes themselves are (almost) one class: nothing to tell apart
    problems = []
    if item_share[dominant] >= ONE_CLASS_ITEMS:
        items, votes = f"{item_share[dominant]:.0%}", f"{vote_share[dominant]:.0%}"
        problems.append(f"it labelled {items} of items {name} while {votes} of votes are {name}")
    accuracy = np.trace(model.soft_counts, axis1=1, axis2=2) / n_labels
    share = said[:, dominant] / n_labels
    gap = float(np.average(np.abs(accuracy - share), weights=n_labels))
    if gap < SHARE_GAP:
        problems.append(
            f"each reviewer's estimated accuracy is just their share of {name!r} labels (mean gap {gap:.3f}), "
            f"so it measures how often they said {name!r}, not how often they were right"
        )
    return problems


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
