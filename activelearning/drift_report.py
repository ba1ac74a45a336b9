"""The drift section (`templates/activelearning/_drift.html`): its context, for any lead page that shows it.

A page includes the partial with `{% include "activelearning/_drift.html" %}` after adding
`drift_context(policy)` to its context (the models page does; so can a per-policy online page).
"""

from __future__ import annotations

from typing import Any

from activelearning import drift
from labeling.models import Policy

from .services.drift import policy_drift

FEATURE_NAMES = {
    "score": "Model score",
    "text_length": "Text length (characters)",
    "language": "Language",
    "source": "Source mix",
}


def drift_context(policy: Policy | None) -> dict[str, Any]:
    """`drift` (the measurement), `drift_rows` (one per feature, with its bins) for the partial."""
    if policy is None:
        return {}
    measured = policy_drift(policy=policy)
    rows: list[dict[str, Any]] = [
        {
            "name": FEATURE_NAMES.get(feature.feature, feature.feature),
            "feature": feature,
            "bins": list(zip(feature.bins, feature.reference, feature.live, strict=True)),
        }
        for feature in measured.features
    ]
    return {
        "drift": measured,
        "drift_policy": policy,
        "drift_rows": rows,
        "drift_alerting": [
            FEATURE_NAMES.get(f.feature, f.feature).lower() for f in measured.features if f.level == drift.ALERTING
        ],
        "drift_watch": drift.WATCH,
        "drift_alert": drift.ALERT,
        "drift_min_count": drift.MIN_COUNT,
    }
