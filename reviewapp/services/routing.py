"""Routing: where a model's score sends an item, and how urgent the resulting task is.

Pure functions over plain values, so the rules are easy to test at their exact boundaries.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from ..models import RoutingOutcome, RoutingRule, TaskReason

# Audit sampling must not depend on arrival order or process: the draw for a decision is a hash
# of its identity, so re-sending it reproduces the same draw, and any worker computes the same.
_SAMPLING_SALT = b"reviewapp-audit-sample-v1"
MIN_UNCERTAINTY = 0.05


@dataclass(frozen=True)
class Route:
    outcome: str
    audit_sampled: bool
    sampling_propensity: float
    task_reason: str | None
    queue_id: int | None


def sample_unit(key: str) -> float:
    """A uniform number in [0, 1) determined by `key`."""
    digest = hashlib.sha256(_SAMPLING_SALT + key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route_score(*, score: float, rule: RoutingRule, sample_key: str) -> Route:
    """Apply `rule` to `score`.

    score >= auto_action → auto_action; score <= auto_clear → auto_clear; otherwise review.
    An automatic outcome is sampled into audit with the rule's rate; the rate is returned as the
    propensity so estimates of automation quality can be weighted by 1/propensity.
    """
    if rule.auto_action is not None and score >= rule.auto_action:
        return _automatic(RoutingOutcome.AUTO_ACTION, rule.audit_rate_action, rule, sample_key)
    if rule.auto_clear is not None and score <= rule.auto_clear:
        return _automatic(RoutingOutcome.AUTO_CLEAR, rule.audit_rate_clear, rule, sample_key)
    return Route(RoutingOutcome.REVIEW, False, 1.0, TaskReason.LOW_CONFIDENCE, rule.queue_id)


def _automatic(outcome: str, rate: float, rule: RoutingRule, sample_key: str) -> Route:
    sampled = rate > 0 and sample_unit(sample_key) < rate
    if not sampled:
        return Route(outcome, False, rate, None, None)
    queue_id = rule.audit_queue_id or rule.queue_id
    return Route(outcome, True, rate, TaskReason.AUDIT_SAMPLE, queue_id)


def task_priority(*, severity_weight: float, score: float, reach: int) -> float:
    """severity × uncertainty × reach factor; higher is served first.

    Uncertainty is 1 at score 0.5 and falls linearly to a small floor at 0 and 1, so confident
    audit samples still rank by severity and reach. Reach counts logarithmically: 10× the
    audience adds one unit.
    """
    uncertainty = max(1.0 - abs(2.0 * score - 1.0), MIN_UNCERTAINTY)
    reach_factor = 1.0 + math.log10(1 + max(reach, 0))
    return round(severity_weight * uncertainty * reach_factor, 6)
