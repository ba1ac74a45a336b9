"""Reviewer and policy quality: agreement reports and reviewer statistics.

Numbers come from `labeling.stats.agreement` (checked against reference packages) and from the
checked Dawid–Skene fits of `labeling.services.reliability`; this module only selects the
annotations and shapes the results. Every figure is of people by default: an LLM reviewer's
answers (source `llm`) join only when a caller passes `include_llm=True`, and the LLM is shown
beside the humans by `labeling.llm.services.reports`, not among them.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import combinations

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet

from .models import Annotation, GoldLabel, Policy, PolicyVersion
from .scales import FieldScale, answer_category, schema_scales
from .services.honeypots import honeypot_accuracy
from .services.reliability import policy_annotations, policy_triples, reliabilities_in_force
from .stats.agreement import (
    NOMINAL,
    ConfidenceInterval,
    PairKappa,
    Scale,
    bootstrap_ci,
    fleiss_kappa,
    krippendorff_alpha,
    mean_pairwise_kappa,
    pairwise_kappas,
    percent_agreement,
    units_from_triples,
)
from .stats.proportions import wilson_interval

# Reviewer pairs need this many items in common before their Cohen's kappa is listed or averaged.
MIN_PAIR_OVERLAP = 20
# Below this many items with two or more answers an agreement figure says little and a bootstrap
# interval over items is meaningless (one item resamples to itself: a zero-width interval), so
# pages show the figure with a caveat and no interval.
MIN_AGREEMENT_ITEMS = 20


def _annotations(
    policy: Policy,
    *,
    queue_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_llm: bool = False,
) -> QuerySet[Annotation]:
    """Live annotations of real work under a policy (honeypots measure, not vote); people's only
    unless `include_llm` (see `policy_annotations`)."""
    rows = policy_annotations(policy, include_llm=include_llm)
    if queue_id is not None:
        rows = rows.filter(task__queue_id=queue_id)
    if since is not None:
        rows = rows.filter(created_at__gte=since)
    if until is not None:
        rows = rows.filter(created_at__lt=until)
    return rows


_triples = policy_triples


@dataclass(frozen=True)
class AgreementReport:
    units: int
    annotations: int
    percent: ConfidenceInterval
    fleiss: ConfidenceInterval
    alpha: ConfidenceInterval
    min_items: int = MIN_AGREEMENT_ITEMS

    @property
    def too_few(self) -> bool:
        return self.units < self.min_items


def agreement_report(
    *,
    policy: Policy,
    queue_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    resamples: int = 500,
    include_llm: bool = False,
) -> AgreementReport | None:
    """Percent agreement, Fleiss' kappa and Krippendorff's alpha with bootstrap 95 % intervals."""
    rows = _annotations(policy, queue_id=queue_id, since=since, until=until, include_llm=include_llm)
    triples = _triples(rows)
    units = [u for u in units_from_triples(triples) if len(u) >= 2]
    if not units:
        return None
    ci = partial(bootstrap_ci, units=units, n_resamples=resamples, seed=0)
    return AgreementReport(
        units=len(units),
        annotations=sum(len(u) for u in units),
        percent=ci(percent_agreement),
        fleiss=ci(fleiss_kappa),
        alpha=ci(krippendorff_alpha),
    )


def agreement_over_time(*, policy: Policy, weeks: int = 8, now: datetime) -> list[tuple[datetime, AgreementReport]]:
    """Weekly alpha (and the rest) for the last `weeks` weeks that have overlapping annotations."""
    points = []
    for back in range(weeks, 0, -1):
        start = now - timedelta(weeks=back)
        report = agreement_report(policy=policy, since=start, until=start + timedelta(weeks=1), resamples=200)
        if report is not None:
            points.append((start, report))
    return points


@dataclass(frozen=True)
class ReviewerPair:
    a: str  # reviewer usernames, as people know them
    b: str
    kappa: float
    overlap: int


def reviewer_pairs(
    *, policy: Policy, min_overlap: int = MIN_PAIR_OVERLAP, limit: int = 30, include_llm: bool = False
) -> list[ReviewerPair]:
    """Cohen's kappa on the label for the reviewer pairs who labelled the most items in common, by username."""
    units = units_from_triples(_triples(_annotations(policy, include_llm=include_llm)))
    pairs = sorted(pairwise_kappas(units, min_overlap=min_overlap), key=lambda p: -p.overlap)[:limit]
    ids = {int(reviewer) for pair in pairs for reviewer in (pair.a, pair.b)}
    names = dict(User.objects.filter(pk__in=ids).values_list("pk", "username"))
    return [ReviewerPair(names[int(p.a)], names[int(p.b)], p.kappa, p.overlap) for p in pairs]


# --- agreement on the scale the schema declares, and the mean pairwise kappa -----------------


@dataclass(frozen=True)
class AlphaFigure:
    """Krippendorff's alpha of one answer field under one metric, with what it was computed on."""

    field: str  # "label" or "severity"
    scale: Scale
    chosen: bool  # the metric the policy's schema declares for this field
    ci: ConfidenceInterval
    items: int  # items with two or more answers that place the field
    annotations: int  # those answers
    off_scale: int  # answers left out: their category is not on the declared scale

    @property
    def too_few(self) -> bool:
        return self.items < MIN_AGREEMENT_ITEMS


@dataclass(frozen=True)
class KappaFigure:
    """Mean of Cohen's kappa over reviewer pairs, with a bootstrap interval over items."""

    categories: str  # what was compared, e.g. "every label" or "Abusive vs any other label"
    ci: ConfidenceInterval
    pairs: int  # reviewer pairs with at least `min_overlap` items in common
    items: int
    annotations: int
    min_overlap: int


@dataclass(frozen=True)
class ScaleAgreementReport:
    version: int  # the policy version whose schema chose the metrics
    alphas: list[AlphaFigure]
    kappas: list[KappaFigure]
    resamples: int
    min_pair_overlap: int = MIN_PAIR_OVERLAP


def scale_agreement_report(
    *, policy: Policy, queue_id: int | None = None, resamples: int = 500, include_llm: bool = False
) -> ScaleAgreementReport | None:
    """Alpha per answer field on the scale the policy's schema declares, and the mean pairwise kappa.

    Each field (label; severity when the schema has levels) gets Krippendorff's alpha by the
    metric its scale chooses (`labeling.scales`), and nominal alpha beside it on the same answers
    when that metric is not nominal, so the two can be compared. The mean pairwise Cohen's kappa
    is over reviewer pairs with at least MIN_PAIR_OVERLAP items in common, on every label and,
    when the schema has more than two labels, on its first label (the violation) against the
    rest. Intervals: percentile bootstrap over items (the pairs stay fixed), 95 %. Population:
    live single-label answers to real work (not honeypots), each reviewer's first answer per
    item, as in `agreement_report`. None when the policy has no version or no answers.
    """
    version = policy.current_version()
    if version is None:
        return None
    rows = _annotations(policy, queue_id=queue_id, include_llm=include_llm).order_by("created_at")
    answers = list(rows.values_list("item_id", "reviewer_id", "labels", "severity"))
    if not answers:
        return None
    ci = partial(bootstrap_ci, n_resamples=resamples, seed=0)
    alphas = [
        figure
        for field_scale in schema_scales(version.label_schema).values()
        for figure in _alpha_figures(field_scale, answers, ci)
    ]
    return ScaleAgreementReport(version.number, alphas, _kappa_figures(version, answers, ci), resamples)


def _alpha_figures(field_scale: FieldScale, answers: list[tuple], ci: partial) -> list[AlphaFigure]:
    scale = field_scale.scale
    triples, off_scale = [], 0
    for item, reviewer, labels, severity in answers:
        category = answer_category(field_scale.field, scale, labels, severity)
        if category is None:
            continue
        if scale.level != "nominal" and category not in scale.order:
            off_scale += 1  # a retired label or level: it has no place on the scale in force
            continue
        triples.append((str(item), str(reviewer), category))
    units = [unit for unit in units_from_triples(triples) if len(unit) >= 2]
    if not units:
        return []
    counts = {"items": len(units), "annotations": sum(map(len, units)), "off_scale": off_scale}
    metrics = [(scale, True)] if scale.level == "nominal" else [(scale, True), (NOMINAL, False)]
    return [
        AlphaFigure(field_scale.field, metric, chosen, ci(partial(krippendorff_alpha, scale=metric), units), **counts)
        for metric, chosen in metrics
    ]


def _kappa_figures(version: PolicyVersion, answers: list[tuple], ci: partial) -> list[KappaFigure]:
    triples = [(str(item), str(reviewer), labels[0]) for item, reviewer, labels, _ in answers if len(labels) == 1]
    views = [("every label", units_from_triples(triples))]
    values = version.label_values
    if len(values) > 2:
        violation = values[0]
        binary = [(item, reviewer, violation if label == violation else "other") for item, reviewer, label in triples]
        views.append((f"{version.label_title(violation)} vs any other label", units_from_triples(binary)))
    figures = []
    for categories, units in views:
        metric = partial(mean_pairwise_kappa, min_overlap=MIN_PAIR_OVERLAP)
        pairs = pairwise_kappas(units, min_overlap=MIN_PAIR_OVERLAP)
        if not pairs:
            continue
        shared = _units_shared_by(units, pairs)
        figures.append(
            KappaFigure(categories, ci(metric, units), len(pairs), len(shared), sum(map(len, shared)), MIN_PAIR_OVERLAP)
        )
    return figures


def _units_shared_by(units: list[dict[str, str]], pairs: list[PairKappa]) -> list[dict[str, str]]:
    """The units on which at least one of `pairs` both answered: what the mean kappa is computed on."""
    wanted = {(p.a, p.b) for p in pairs}
    return [unit for unit in units if any(pair in wanted for pair in combinations(sorted(unit), 2))]


@dataclass
class ReviewerStats:
    reviewer: User
    annotations: int = 0
    median_handle_ms: int | None = None
    agreement_with_gold: float | None = None
    gold_compared: int = 0
    honeypot_accuracy: float | None = None
    honeypots_answered: int = 0
    honeypot_interval: tuple[float, float] | None = None
    reliability: float | None = None
    reliability_items: int = 0  # items the Dawid–Skene accuracy was estimated on
    reliability_interval: tuple[float, float] | None = None
    flags: list[str] = field(default_factory=list)


def reviewer_stats(*, policy: Policy, since: datetime, include_llm: bool = False) -> list[ReviewerStats]:
    """Per reviewer: throughput, handle time, agreement with gold, honeypot accuracy, reliability.

    A reviewer is flagged when their honeypot accuracy is below HONEYPOT_MIN_ACCURACY over at least
    HONEYPOT_MIN_ANSWERS honeypots, or their Dawid–Skene accuracy is below the same bar — the
    latter only from a fit that passed its checks (`reliabilities_in_force`) — and in both cases
    only when the whole 95 % Wilson interval (`labeling.stats.proportions`) is below the bar: with
    20 labels an estimate of 60 % is compatible with 80 %, and a flag on a person must not be noise.
    """
    rows = (
        _annotations(policy, since=since, include_llm=include_llm)
        .select_related("reviewer")
        .only("reviewer", "labels", "handle_time_ms", "item_id")
    )
    gold = dict(GoldLabel.objects.filter(policy=policy, superseded_by__isnull=True).values_list("item_id", "labels"))
    stats: dict[int, ReviewerStats] = {}
    handle: dict[int, list[int]] = defaultdict(list)
    agree: dict[int, list[bool]] = defaultdict(list)
    for annotation in rows:
        entry = stats.setdefault(annotation.reviewer_id, ReviewerStats(reviewer=annotation.reviewer))
        entry.annotations += 1
        if annotation.handle_time_ms:
            handle[annotation.reviewer_id].append(annotation.handle_time_ms)
        if annotation.item_id in gold:
            agree[annotation.reviewer_id].append(sorted(annotation.labels) == sorted(gold[annotation.item_id]))
    for hp in honeypot_accuracy(policy_id=policy.pk, include_llm=include_llm):
        if hp.reviewer_id in stats:
            stats[hp.reviewer_id].honeypot_accuracy = hp.accuracy
            stats[hp.reviewer_id].honeypots_answered = hp.answered
            stats[hp.reviewer_id].honeypot_interval = wilson_interval(hp.accuracy * hp.answered, hp.answered)
    for rel in reliabilities_in_force(policy_id=policy.pk, reviewer_ids=stats):
        entry = stats[rel.reviewer_id]
        entry.reliability, entry.reliability_items = rel.accuracy, rel.n_items
        entry.reliability_interval = wilson_interval(rel.accuracy * rel.n_items, rel.n_items)
    for reviewer_id, entry in stats.items():
        if handle[reviewer_id]:
            entry.median_handle_ms = int(statistics.median(handle[reviewer_id]))
        if agree[reviewer_id]:
            entry.gold_compared = len(agree[reviewer_id])
            entry.agreement_with_gold = sum(agree[reviewer_id]) / len(agree[reviewer_id])
        entry.flags = _flags(entry)
    return sorted(stats.values(), key=lambda s: (-len(s.flags), -s.annotations))


def _flags(entry: ReviewerStats) -> list[str]:
    bar = settings.HONEYPOT_MIN_ACCURACY
    flags = []
    enough = entry.honeypots_answered >= settings.HONEYPOT_MIN_ANSWERS
    if entry.honeypot_accuracy is not None and enough and entry.honeypot_interval[1] < bar:  # type: ignore[index]
        low, high = entry.honeypot_interval  # type: ignore[misc]
        flags.append(
            f"honeypot accuracy {entry.honeypot_accuracy:.0%} (95 % interval {low:.0%}–{high:.0%} over "
            f"{entry.honeypots_answered} honeypots) < {bar:.0%}"
        )
    if entry.reliability is not None and entry.reliability_interval[1] < bar:  # type: ignore[index]
        low, high = entry.reliability_interval  # type: ignore[misc]
        flags.append(
            f"estimated accuracy {entry.reliability:.0%} (95 % interval {low:.0%}–{high:.0%} over "
            f"{entry.reliability_items} items) < {bar:.0%}"
        )
    return flags
