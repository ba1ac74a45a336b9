"""Routing decisions at and around each threshold, and audit sampling."""

from __future__ import annotations

import pytest

from reviewapp.models import RoutingOutcome, RoutingRule, TaskReason
from reviewapp.services.routing import route_score, sample_unit, task_priority


def rule(**kwargs) -> RoutingRule:  # type: ignore[no-untyped-def]
    values = {
        "auto_clear": 0.2,
        "auto_action": 0.9,
        "audit_rate_clear": 0.0,
        "audit_rate_action": 0.0,
        "queue_id": 1,
        "audit_queue_id": 2,
    }
    values.update(kwargs)
    return RoutingRule(**values)


@pytest.mark.parametrize(
    ("score", "outcome"),
    [
        (0.0, RoutingOutcome.AUTO_CLEAR),
        (0.2, RoutingOutcome.AUTO_CLEAR),  # exactly at auto_clear: cleared
        (0.2000001, RoutingOutcome.REVIEW),
        (0.8999999, RoutingOutcome.REVIEW),
        (0.9, RoutingOutcome.AUTO_ACTION),  # exactly at auto_action: enforced
        (1.0, RoutingOutcome.AUTO_ACTION),
    ],
)
def test_it_routes_at_threshold_boundaries(score: float, outcome: str) -> None:
    assert route_score(score=score, rule=rule(), sample_key="k").outcome == outcome


def test_review_band_goes_to_review_queue_with_propensity_one() -> None:
    route = route_score(score=0.5, rule=rule(), sample_key="k")
    assert (route.task_reason, route.queue_id, route.sampling_propensity) == (TaskReason.LOW_CONFIDENCE, 1, 1.0)


def test_null_thresholds_turn_automation_off() -> None:
    manual = rule(auto_clear=None, auto_action=None)
    assert route_score(score=0.0, rule=manual, sample_key="k").outcome == RoutingOutcome.REVIEW
    assert route_score(score=1.0, rule=manual, sample_key="k").outcome == RoutingOutcome.REVIEW


def test_unsampled_auto_decision_makes_no_task_but_records_rate() -> None:
    route = route_score(score=0.95, rule=rule(audit_rate_action=0.0), sample_key="k")
    assert (route.audit_sampled, route.queue_id, route.sampling_propensity) == (False, None, 0.0)


def test_full_rate_always_samples_into_audit_queue() -> None:
    route = route_score(score=0.05, rule=rule(audit_rate_clear=1.0), sample_key="k")
    assert route.audit_sampled and route.queue_id == 2 and route.task_reason == TaskReason.AUDIT_SAMPLE
    assert route.sampling_propensity == 1.0


def test_audit_queue_defaults_to_review_queue() -> None:
    route = route_score(score=0.95, rule=rule(audit_rate_action=1.0, audit_queue_id=None), sample_key="k")
    assert route.queue_id == 1


def test_sampling_is_deterministic_per_key_and_close_to_rate() -> None:
    r = rule(audit_rate_action=0.1)
    first = [route_score(score=0.95, rule=r, sample_key=f"item-{i}").audit_sampled for i in range(20_000)]
    again = [route_score(score=0.95, rule=r, sample_key=f"item-{i}").audit_sampled for i in range(20_000)]
    assert first == again
    assert 0.09 < sum(first) / len(first) < 0.11  # binomial sd is 0.002: a real bias would show


def test_sample_unit_is_in_unit_interval() -> None:
    values = [sample_unit(str(i)) for i in range(1000)]
    assert min(values) >= 0.0 and max(values) < 1.0


def test_priority_grows_with_severity_uncertainty_and_reach() -> None:
    base = task_priority(severity_weight=1.0, score=0.6, reach=10)
    assert task_priority(severity_weight=3.0, score=0.6, reach=10) > base
    assert task_priority(severity_weight=1.0, score=0.5, reach=10) > base
    assert task_priority(severity_weight=1.0, score=0.6, reach=10_000) > base
    assert task_priority(severity_weight=1.0, score=1.0, reach=0) > 0  # confident audits still ordered
