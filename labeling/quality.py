"""Reviewer and policy quality: agreement reports and reviewer statistics.

Numbers come from `labeling.stats.agreement` (checked against reference packages) and from the
checked Dawid–Skene fits of `labeling.services.reliability`; this module only selects the
annotations and shapes the results.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import QuerySet

from .models import Annotation, GoldLabel, Policy
from .services.honeypots import honeypot_accuracy
from .services.reliability import policy_annotations, policy_triples, reliabilities_in_force
from .stats.agreement import (
    ConfidenceInterval,
    bootstrap_ci,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_kappas,
    percent_agreement,
    units_from_triples,
)


def _annotations(
    policy: Policy, *, queue_id: int | None = None, since: datetime | None = None, until: datetime | None = None
) -> QuerySet[Annotation]:
    """Live, single-label annotations of real work under a policy (honeypots measure, not vote)."""
    rows = policy_annotations(policy)
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


def agreement_report(
    *,
    policy: Policy,
    queue_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    resamples: int = 500,
) -> AgreementReport | None:
    """Percent agreement, Fleiss' kappa and Krippendorff's alpha with bootstrap 95 % intervals."""
    triples = _triples(_annotations(policy, queue_id=queue_id, since=since, until=until))
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


def reviewer_pairs(*, policy: Policy, min_overlap: int = 20, limit: int = 30) -> list:
    """Cohen's kappa for the reviewer pairs who labelled the most items in common."""
    units = units_from_triples(_triples(_annotations(policy)))
    pairs = pairwise_kappas(units, min_overlap=min_overlap)
    return sorted(pairs, key=lambda p: -p.overlap)[:limit]


@dataclass
class ReviewerStats:
    reviewer: User
    annotations: int = 0
    median_handle_ms: int | None = None
    agreement_with_gold: float | None = None
    gold_compared: int = 0
    honeypot_accuracy: float | None = None
    honeypots_answered: int = 0
    reliability: float | None = None
    flags: list[str] = field(default_factory=list)


def reviewer_stats(*, policy: Policy, since: datetime) -> list[ReviewerStats]:
    """Per reviewer: throughput, handle time, agreement with gold, honeypot accuracy, reliability.

    A reviewer is flagged when their honeypot accuracy is below HONEYPOT_MIN_ACCURACY over at least
    HONEYPOT_MIN_ANSWERS honeypots, or their Dawid–Skene accuracy is below the same bar — the
    latter only from a fit that passed its checks (`reliabilities_in_force`).
    """
    rows = (
        _annotations(policy, since=since)
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
    for hp in honeypot_accuracy(policy_id=policy.pk):
        if hp.reviewer_id in stats:
            stats[hp.reviewer_id].honeypot_accuracy = hp.accuracy
            stats[hp.reviewer_id].honeypots_answered = hp.answered
    for rel in reliabilities_in_force(policy_id=policy.pk, reviewer_ids=stats):
        stats[rel.reviewer_id].reliability = rel.accuracy
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
    if entry.honeypot_accuracy is not None and enough and entry.honeypot_accuracy < bar:
        flags.append(f"honeypot accuracy {entry.honeypot_accuracy:.0%} < {bar:.0%}")
    if entry.reliability is not None and entry.reliability < bar:
        flags.append(f"estimated accuracy {entry.reliability:.0%} < {bar:.0%}")
    return flags
