"""Reliability estimation and reviewer statistics from real annotations in the database."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import ReviewerReliability
from labeling.quality import agreement_report, reviewer_stats
from labeling.services.annotations import annotation_submit
from labeling.services.reliability import reliability_refresh
from reviewapp.services.claims import task_claim_next
from tests.factories import ReviewTaskFactory, UserFactory

# Slow tier: fits Dawid-Skene and bootstraps agreement over hundreds of annotations.
pytestmark = pytest.mark.slow


@pytest.fixture
def labelled(policy, queue, settings):  # type: ignore[no-untyped-def]
    """40 items, three careful reviewers and one who answers at random."""
    settings.UNDO_WINDOW_SECONDS = 0
    queue.required_annotations = 4
    queue.max_annotations = 4
    queue.save()
    rng = random.Random(3)
    careful = [UserFactory(username=f"careful{i}") for i in range(3)]
    careless = UserFactory(username="careless")
    for n in range(40):
        truth = "violating" if n % 3 == 0 else "not_violating"
        task = ReviewTaskFactory(policy=policy, queue=queue)
        for reviewer in [*careful, careless]:
            assert task_claim_next(reviewer=reviewer, queue=queue).task.pk == task.pk
            if reviewer is careless:
                label = rng.choice(["violating", "not_violating"])
            else:
                label = truth if rng.random() < 0.95 else ("violating" if truth != "violating" else "not_violating")
            annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])
    return careful, careless


def test_dawid_skene_reliability_ranks_the_careless_reviewer_last(policy, labelled) -> None:
    careful, careless = labelled
    assert reliability_refresh(policy=policy) == 4
    accuracy = dict(ReviewerReliability.objects.values_list("reviewer__username", "accuracy"))
    assert accuracy["careless"] < 0.7 < min(accuracy[u.username] for u in careful)
    stored = ReviewerReliability.objects.get(reviewer=careless)
    assert stored.labels == ["not_violating", "violating"] and len(stored.confusion) == 2


def test_reviewer_stats_flag_low_reliability_only_when_the_interval_is_below_the_bar(
    policy, labelled, settings
) -> None:
    reliability_refresh(policy=policy)
    since = timezone.now() - timedelta(days=1)
    stats = {s.reviewer.username: s for s in reviewer_stats(policy=policy, since=since)}
    careless = stats["careless"]
    # Random answers on 40 items: an estimate well under 70 %, but an interval that still reaches it.
    assert careless.reliability < 0.7 < careless.reliability_interval[1] and not careless.flags
    settings.HONEYPOT_MIN_ACCURACY = 0.8
    stats = {s.reviewer.username: s for s in reviewer_stats(policy=policy, since=since)}
    assert stats["careless"].flags and not stats["careful0"].flags
    assert "95 % interval" in stats["careless"].flags[0] and "over 40 items" in stats["careless"].flags[0]
    assert stats["careful0"].annotations == 40
    assert stats["careful0"].agreement_with_gold > stats["careless"].agreement_with_gold


def test_agreement_report_has_intervals(policy, labelled) -> None:
    report = agreement_report(policy=policy, resamples=200)
    assert report.units == 40 and report.annotations == 160
    assert report.alpha.low <= report.alpha.point <= report.alpha.high
    assert 0.2 < report.alpha.point < 0.9
