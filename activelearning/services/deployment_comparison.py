"""Shadow vs live on the same items: what the models page shows before a lead switches.

Read-only. On the items both deployed versions decided (newest `MAX_ITEMS`):
- agreement of their predicted labels;
- the routing each score gets under the thresholds in force now for `al-<policy>` (the bands
  enforce / queue / clear; audit sampling left aside), and how many items would move between
  bands if the shadow version were live;
- plain, unweighted precision of automatic enforcement (and violations among automatic clears)
  of each version on the items that have a current gold label, with n. Gold reaches items through
  the live model's routing (its review band and audit sample), so these counts lean towards what
  the live model sent to people; inverse-propensity estimates are computed elsewhere
  (labeling.stats.online), this is a count with its n, not an estimate of traffic.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db import connection
from django.utils import timezone

from labeling.models import Policy
from reviewapp.models import RoutingRule

from ..models import ModelDeployment, ModelVersion

MAX_ITEMS = 50_000
BANDS = ("enforce", "queue", "clear")

_PAIRS_SQL = """
SELECT l.score, l.predicted_label, s.score, s.predicted_label,
       (SELECT g.labels FROM labeling_goldlabel g WHERE g.item_id = s.item_id AND g.policy_id = s.policy_id
        ORDER BY g.version DESC LIMIT 1)
FROM reviewapp_modeldecision s
JOIN reviewapp_modeldecision l
  ON l.item_id = s.item_id AND l.policy_id = s.policy_id AND l.model_name = s.model_name AND l.model_version = %(live)s
WHERE s.policy_id = %(policy)s AND s.model_name = %(name)s AND s.model_version = %(shadow)s
ORDER BY s.id DESC
LIMIT %(limit)s
"""


def routing_band(score: float, rule: RoutingRule | None) -> str:
    """enforce / clear / queue for `score` under `rule`'s thresholds (as `route_score` decides)."""
    if rule is not None and rule.auto_action is not None and score >= rule.auto_action:
        return "enforce"
    if rule is not None and rule.auto_clear is not None and score <= rule.auto_clear:
        return "clear"
    return "queue"


def deployment_comparison(*, live: ModelVersion, shadow: ModelVersion) -> dict[str, Any]:
    """Agreement, routing moves and gold counts of `shadow` against `live` on the items both decided."""
    names = [live.model_name, RoutingRule.ANY_MODEL]
    rules = {r.model_name: r for r in RoutingRule.objects.filter(policy_id=live.policy_id, model_name__in=names)}
    rule = rules.get(live.model_name) or rules.get(RoutingRule.ANY_MODEL)  # as ingest picks
    with connection.cursor() as cursor:
        cursor.execute(
            _PAIRS_SQL,
            {
                "live": live.version_label,
                "shadow": shadow.version_label,
                "policy": live.policy_id,
                "name": live.model_name,
                "limit": MAX_ITEMS,
            },
        )
        pairs = cursor.fetchall()
    moves = Counter((routing_band(ls, rule), routing_band(ss, rule)) for ls, _, ss, _, _ in pairs)
    return {
        "n": len(pairs),
        "agree": sum(1 for _, lp, _, sp, _ in pairs if lp == sp),
        "thresholds": {"auto_action": rule.auto_action, "auto_clear": rule.auto_clear} if rule else None,
        "rule_model": rule.model_name if rule else None,
        "moves": [{"live": a, "shadow": b, "n": moves[(a, b)]} for a in BANDS for b in BANDS if moves[(a, b)]],
        "moved": sum(n for (a, b), n in moves.items() if a != b),
        "gold": {
            "live": _gold_counts([(p[0], p[4]) for p in pairs], rule, live.positive_label),
            "shadow": _gold_counts([(p[2], p[4]) for p in pairs], rule, shadow.positive_label),
        },
    }


def _gold_counts(scored: list[tuple[float, Any]], rule: RoutingRule | None, positive: str) -> dict[str, Any]:
    """Among items with gold: would-be enforcements that were violations, would-be clears that were."""
    enforce = [labels for score, labels in scored if labels is not None and routing_band(score, rule) == "enforce"]
    clear = [labels for score, labels in scored if labels is not None and routing_band(score, rule) == "clear"]
    correct = sum(1 for labels in enforce if positive in labels)
    missed = sum(1 for labels in clear if positive in labels)
    return {
        "enforce_n": len(enforce),
        "enforce_correct": correct,
        "enforce_precision": correct / len(enforce) if enforce else None,
        "clear_n": len(clear),
        "clear_violations": missed,
    }


def deployment_context(policy: Policy | None) -> dict[str, Any]:
    """What the models page shows of a policy's deployment, with the comparison when both run."""
    if policy is None:
        return {}
    deployment = (
        ModelDeployment.objects.filter(policy=policy)
        .select_related("live__policy", "shadow__policy", "previous_live__policy")
        .first()
    )
    comparison = None
    if deployment is not None and deployment.live is not None and deployment.shadow is not None:
        comparison = deployment_comparison(live=deployment.live, shadow=deployment.shadow)
    shadow_running = bool(deployment and deployment.shadow_until and deployment.shadow_until > timezone.now())
    return {"deployment": deployment, "comparison": comparison, "shadow_running": shadow_running}
