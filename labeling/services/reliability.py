"""Reviewer reliability from a checked Dawid–Skene fit: refresh it, and read only what may be used.

`reliability_refresh` fits `labeling.stats.dawid_skene` on a policy's annotations and records the
fit (`ReliabilityFit`) with its check. Only a fit that passed stores per-reviewer estimates; a
failed one removes the policy's estimates, so nothing downstream — reviewer flags on the quality
page, reliability-weighted consensus, the adjudication view — can use a collapsed model.
Everything that reads estimates goes through `reliabilities_in_force`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from django.db import transaction
from django.db.models import QuerySet

from reviewapp.models import TaskReason

from ..models import Annotation, AnnotationSource, Policy, ReliabilityFit, ReviewerReliability
from ..stats.dawid_skene import DawidSkeneModel, fit_dawid_skene

MIN_ITEMS_FOR_RELIABILITY = 20


def policy_annotations(policy: Policy, *, include_llm: bool = False) -> QuerySet[Annotation]:
    """Live annotations of real work under a policy (honeypots measure reviewers, they do not vote).

    Human answers only unless `include_llm`: an LLM reviewer's answers (source `llm`, written by
    its machine account) are measured beside the humans (`labeling.llm.services.reports`), never
    mixed into the human figures, the crowd model or its weights.
    """
    rows = Annotation.objects.filter(policy=policy, retracted_at__isnull=True).exclude(task__reason=TaskReason.HONEYPOT)
    return rows if include_llm else rows.exclude(source=AnnotationSource.LLM)


def policy_triples(rows: QuerySet[Annotation]) -> list[tuple[str, str, str]]:
    """(item id, reviewer id, label) of single-label annotations, oldest first."""
    return [
        (str(item), str(reviewer), labels[0])
        for item, reviewer, labels in rows.order_by("created_at").values_list("item_id", "reviewer_id", "labels")
        if len(labels) == 1
    ]


def reliability_refresh(*, policy: Policy, smoothing: float = 0.0, min_labels: int = MIN_ITEMS_FOR_RELIABILITY) -> int:
    """Fit Dawid–Skene on the policy's human annotations, record the fit, and store estimates if it passed.

    `smoothing` is the fit's Dirichlet smoothing of confusion cells and class counts (0, the
    maximum-likelihood fit, is what survives sparse crowds; see `labeling.stats.dawid_skene`).
    Returns the number of reviewers stored (0 when the fit failed its checks). A failed fit
    deletes the policy's earlier estimates: they describe data the newest fit could not model,
    and the page says why (`ReliabilityFit.problems`). Reviewers with fewer than `min_labels`
    labels are not stored (their estimates are mostly noise).
    Multi-label answers are not modelled. The fit runs outside the transaction; one
    transaction then records the fit and replaces the estimates.
    """
    version = policy.current_version()
    triples = policy_triples(policy_annotations(policy))
    if version is None or not triples:
        return 0
    classes = sorted(set(version.label_values) | {t[2] for t in triples})
    model = fit_dawid_skene(triples, classes=classes, smoothing=smoothing, prior_smoothing=smoothing)
    with transaction.atomic():
        fit = _fit_record(policy, model)
        ReviewerReliability.objects.filter(policy=policy).delete()
        if not fit.passed:
            return 0
        stored = [
            _estimate(policy, fit, model, summary.annotator, summary.accuracy, summary.n_labels)
            for summary in model.reliability()
            if summary.n_labels >= min_labels
        ]
        ReviewerReliability.objects.bulk_create(stored)
    return len(stored)


def _fit_record(policy: Policy, model: DawidSkeneModel) -> ReliabilityFit:
    said = model.soft_counts.sum(axis=(0, 1))
    return ReliabilityFit.objects.create(
        policy=policy,
        passed=model.check.passed,
        problems=list(model.check.problems),
        n_labels=round(float(said.sum())),
        n_items=len(model.items),
        n_reviewers=len(model.annotators),
        iterations=model.n_iter,
        converged=model.converged,
        labels=list(model.classes),
        priors=[p if math.isfinite(p) else None for p in model.priors.tolist()],
        vote_shares=(said / said.sum()).tolist() if said.sum() > 0 else [],
    )


def _estimate(
    policy: Policy, fit: ReliabilityFit, model: DawidSkeneModel, annotator: str, accuracy: float, n_labels: int
) -> ReviewerReliability:
    matrix = model.confusion[model.annotators.index(annotator)]
    return ReviewerReliability(
        reviewer_id=int(annotator),
        policy=policy,
        fit=fit,
        labels=list(model.classes),
        confusion=np.asarray(matrix).tolist(),
        accuracy=accuracy,
        n_items=n_labels,
    )


def reliability_fit_latest(*, policy_id: int) -> ReliabilityFit | None:
    """The policy's newest Dawid–Skene fit, passed or not; None before the first refresh."""
    return ReliabilityFit.objects.filter(policy_id=policy_id).order_by("-created_at", "-pk").first()


def reliabilities_in_force(
    *, policy_id: int, reviewer_ids: Iterable[int] | None = None
) -> QuerySet[ReviewerReliability]:
    """Estimates that may be used: those of the policy's newest fit, when that fit passed its checks.

    Empty when there is no fit, when the newest one failed, and for estimates stored before fits
    were checked (no `fit`). `reviewer_ids` narrows it to some reviewers.
    """
    latest = reliability_fit_latest(policy_id=policy_id)
    if latest is None or not latest.passed:
        return ReviewerReliability.objects.none()
    rows = ReviewerReliability.objects.filter(policy_id=policy_id, fit=latest)
    return rows if reviewer_ids is None else rows.filter(reviewer_id__in=list(reviewer_ids))
