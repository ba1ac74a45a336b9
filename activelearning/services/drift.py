"""Drift of a policy's live decisions from what its champion was trained on (PSI per feature).

Reference: the champion's training items — its policy's current gold up to the champion's
`gold_watermark`, train split under the champion's own split definition (`SplitDefinition.of`),
exactly the rows it was fitted on. Live: the decisions received in the last `AL_DRIFT_WINDOW_DAYS`
days (at most the newest `AL_DRIFT_MAX_DECISIONS`):

- the champion's own decisions (model name `al-<policy>`) once it runs upstream;
- until then, every model's decisions for the policy ("all models"), which measures how the
  traffic moved from the training data, not how the champion scores it.

Features (bins fixed by the reference, `activelearning.drift`):
- `score`: deciles of the reference scores. With the champion live, the reference is the
  champion's own scores on the unlabelled pool it scored (`PoolScore`, the same model on the
  traffic of its time); with all models, every stored decision score on the training items.
  Not measured when the reference has no scores.
- `text_length` (characters, deciles), `language` (item metadata) and `source` (upstream system):
  one value per distinct item on each side.

An `alert` on any feature proposes a retraining round to a lead (the models page shows the round
form with trigger "drift"); nothing trains by itself. The reference is cached per champion (it
changes only with a new champion or a new pool scoring). Every measurement (page, REST, and the
`measure_drift` beat every 15 minutes) is also kept in the shared cache as the policy's latest
(`drift_latest`), which is what /metrics reports: a scrape reads no database.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models.functions import Length
from django.utils import timezone

from activelearning import drift
from labeling.models import Policy
from reviewapp.models import ModelDecision

from ..models import ModelStatus, ModelVersion, PoolScore
from .datasets import TRAIN, TrainingDataError, gold_set, label_space
from .splits import SplitDefinition, SplitUnavailable

logger = logging.getLogger(__name__)

ALL_MODELS = "all models"
REFERENCE_CACHE_SECONDS = 3600
LATEST_CACHE_KEY = "al-drift-latest:v1"
LATEST_CACHE_SECONDS = 6 * 3600  # a series older than this disappears from /metrics
MAX_REFERENCE_SCORES = 50_000


@dataclass
class PolicyDrift:
    policy: str
    level: str  # the worst feature level: ok, watch, alert, too_few; "none" when not measured
    champion: str | None = None  # al-<policy>@vN
    live_source: str = ""  # the champion's model name, or ALL_MODELS
    window_days: int = 0
    window_start: datetime | None = None
    n_decisions: int = 0
    reference: str = ""  # in words: which gold, which split, how many items
    score_reference: str = ""
    features: list[drift.FeatureDrift] = field(default_factory=list)
    reason: str = ""  # why nothing was measured
    thresholds: dict[str, float] = field(default_factory=lambda: {"watch": drift.WATCH, "alert": drift.ALERT})

    @property
    def alert(self) -> bool:
        return self.level == drift.ALERTING

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alert": self.alert}


@dataclass(frozen=True)
class _Reference:
    description: str
    item_ids: list[int]
    lengths: list[int]
    languages: list[str | None]
    sources: list[str | None]
    pool_scores: list[float]


def policy_drift(*, policy: Policy, now: datetime | None = None) -> PolicyDrift:
    """PSI per feature of `policy`'s live window against its champion's training items. Reads only."""
    champion = ModelVersion.objects.filter(policy=policy, status=ModelStatus.CHAMPION).first()
    if champion is None:
        return PolicyDrift(
            policy.key, "none", reason="no champion: drift is measured against a champion's training data"
        )
    try:
        reference = _reference(champion)
    except (SplitUnavailable, TrainingDataError) as error:
        return PolicyDrift(policy.key, "none", champion=str(champion), reason=f"training items unavailable: {error}")
    start = (now or timezone.now()) - timedelta(days=settings.AL_DRIFT_WINDOW_DAYS)
    window = ModelDecision.objects.filter(policy=policy, received_at__gte=start)
    own = window.filter(model_name=champion.model_name)
    live_source = champion.model_name if own.exists() else ALL_MODELS
    decisions = own if live_source != ALL_MODELS else window
    rows = list(
        decisions.order_by("-received_at")
        .annotate(length=Length("item__text"))
        .values_list("item_id", "score", "length", "item__metadata__language", "item__source")[
            : settings.AL_DRIFT_MAX_DECISIONS
        ]
    )
    items = {row[0]: row[2:] for row in rows}
    result = PolicyDrift(
        policy.key,
        "none",
        champion=f"{champion.model_name}@{champion.version_label}",
        live_source=live_source,
        window_days=settings.AL_DRIFT_WINDOW_DAYS,
        window_start=start,
        n_decisions=len(rows),
        reference=reference.description,
    )
    reference_scores, result.score_reference = _reference_scores(policy, champion, reference, live_source)
    if reference_scores:
        result.features.append(drift.numeric_drift("score", reference_scores, [row[1] for row in rows]))
    result.features += [
        drift.numeric_drift("text_length", reference.lengths, [v[0] or 0 for v in items.values()]),
        drift.categorical_drift("language", reference.languages, [_text(v[1]) for v in items.values()]),
        drift.categorical_drift("source", reference.sources, [_text(v[2]) for v in items.values()]),
    ]
    result.level = drift.worst_level([f.level for f in result.features])
    _keep_latest(result)
    return result


def _keep_latest(measured: PolicyDrift) -> None:
    """Store the measurement's figures as the policy's latest (last writer wins: they are gauges)."""
    latest = cache.get(LATEST_CACHE_KEY) or {}
    latest[measured.policy] = {
        "live_source": measured.live_source,
        "alert": measured.alert,
        "psi": {f.feature: f.psi for f in measured.features if f.psi is not None},
        "measured_at": timezone.now().timestamp(),
    }
    cache.set(LATEST_CACHE_KEY, latest, LATEST_CACHE_SECONDS)


def drift_latest() -> dict[str, dict[str, Any]]:
    """policy key → its latest measurement's figures (live_source, alert, psi per feature, measured_at)."""
    return dict(cache.get(LATEST_CACHE_KEY) or {})


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _reference(champion: ModelVersion) -> _Reference:
    key = f"al-drift-reference:v1:{champion.pk}:{champion.training_set_sha256}:{champion.artifact_sha256[:16]}"
    cached = cache.get(key)
    if cached is not None:
        return _Reference(**cached)
    gold = gold_set(
        policy=champion.policy,
        space=label_space(champion.policy, champion.positive_label),
        watermark=champion.gold_watermark,
        split=SplitDefinition.of(champion),
        only=TRAIN,
    )
    scores = list(
        PoolScore.objects.filter(model_version=champion).values_list("score", flat=True)[:MAX_REFERENCE_SCORES]
    )
    reference = _Reference(
        description=(
            f"the {len(gold.item_ids)} training items of {champion.model_name}@{champion.version_label} "
            f"(gold ≤ #{champion.gold_watermark}, train split of {SplitDefinition.of(champion).describe()})"
        ),
        item_ids=[int(i) for i in gold.item_ids],
        lengths=[len(text) for text in gold.texts],
        languages=list(gold.slices["language"]),
        sources=list(gold.slices["source"]),
        pool_scores=[float(s) for s in scores],
    )
    cache.set(key, asdict(reference), REFERENCE_CACHE_SECONDS)
    return reference


def _reference_scores(
    policy: Policy, champion: ModelVersion, reference: _Reference, live_source: str
) -> tuple[list[float], str]:
    """The reference score distribution matching the live one, and where it comes from (in words)."""
    label = f"{champion.model_name}@{champion.version_label}"
    if live_source != ALL_MODELS:
        if not reference.pool_scores:
            return [], f"not measured: {label} has scored no pool to compare its live scores with"
        return reference.pool_scores, f"{label}'s scores on the {len(reference.pool_scores)} pool items it scored"
    scores = list(
        ModelDecision.objects.filter(policy=policy, item_id__in=reference.item_ids).values_list("score", flat=True)[
            :MAX_REFERENCE_SCORES
        ]
    )
    if not scores:
        return [], "not measured: no stored decision scores on the training items"
    return [float(s) for s in scores], f"every model's stored decision scores on the training items ({len(scores)})"


def drift_all_policies() -> list[PolicyDrift]:
    """Measure every active policy that has a champion (the `measure_drift` beat, for /metrics).

    A policy whose measurement fails is logged and left out, so it cannot stop the others.
    """
    measured = []
    for policy in Policy.objects.filter(is_active=True, model_versions__status=ModelStatus.CHAMPION).distinct():
        try:
            measured.append(policy_drift(policy=policy))
        except Exception:
            logger.exception("drift of %s not measured", policy.key)
    return measured
