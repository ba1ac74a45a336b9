"""Deployment: which model version scores incoming content in the app, live or in shadow, and rollback.

Promotion and deployment are separate on purpose. Promotion (`promotion.py`) is the offline verdict
on held-out gold; deployment is what runs on traffic, one `ModelDeployment` row per policy:
- a newly promoted champion enters **shadow** for `AL_SHADOW_DAYS` (a lead may choose another
  period). The first model of a policy too: nothing routes on a model a lead has not switched live;
- a lead switches a version **live** in one action; the version live before it is kept as
  `previous_live`, and **rollback** swaps the two back in one action;
- every switch locks the deployment row, re-checks, and writes an audit event with actor and the
  state before and after.

Scoring (`deployed_items_score`) runs on the `scoring` queue: new content items (announced after
commit by `reviewapp.signals.content_ingested`, and a periodic sweep for any the announcement
missed) are scored by the live and the shadow version, and each score enters through
`decisions_ingest` as `al-<policy>@v<N>`, like any upstream model's decision: the live one is routed
under the routing rule of `al-<policy>` (the approved thresholds; the policy's '*' rule before any),
the shadow one is stored with `RoutingOutcome.SHADOW` and routes nothing. Idempotent: the decision
key (item, policy, model name, version) is unique, so an item is never scored twice by one version,
whatever redelivery or sweep runs it again. Only items created after a version's switch (id above
the watermark taken then) are scored: switching live never re-routes old content.

The decisions of a batch are written under a share lock on the deployment row, after re-reading it:
a switch (which takes the row for update) waits for batches being written, and a batch written
after a switch sees it, so a version rolled back routes nothing afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from activelearning.predict_items import predictions
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.errors import Conflict, Invalid
from reviewapp.models import ContentItem
from reviewapp.services.ingest import decisions_ingest

from ..models import DeploymentMode, Encoder, ModelDeployment, ModelVersion
from .features import encoder_from_stored, item_features
from .pipeline import deployed_score_task
from .registry import head_probs

MAX_SHADOW_DAYS = 90


class NothingToRollBack(Conflict):
    """The policy has no previous live version."""


def deployment_state(deployment: ModelDeployment | None) -> dict[str, Any]:
    """The audited picture of a deployment: version ids and the shadow period."""
    if deployment is None:
        return {"live": None, "shadow": None, "previous_live": None, "shadow_until": None}
    return {
        "live": deployment.live_id,
        "shadow": deployment.shadow_id,
        "previous_live": deployment.previous_live_id,
        "shadow_until": deployment.shadow_until.isoformat() if deployment.shadow_until else None,
    }


def _locked(policy_id: int) -> ModelDeployment:
    """The policy's deployment row, created if missing, locked for update. Call inside a transaction."""
    ModelDeployment.objects.get_or_create(policy_id=policy_id)
    return ModelDeployment.objects.select_for_update().get(policy_id=policy_id)


def _newest_item_id() -> int:
    return ContentItem.objects.aggregate(newest=Max("id"))["newest"] or 0


def model_deploy(*, version_id: int, mode: str, actor: Actor, shadow_days: int | None = None) -> ModelDeployment:
    """Put a version in shadow (for `shadow_days`) or live. Locks the policy's deployment row.

    Live: the version live until now becomes `previous_live` (what rollback restores); a version
    leaving shadow for live stops being the shadow. Shadow: refused for the live version (Conflict).
    Deploying a version again in the mode it is in changes nothing but a shadow period.
    """
    if mode not in DeploymentMode.values:
        raise Invalid(f"mode must be one of {', '.join(DeploymentMode.values)}")
    days = settings.AL_SHADOW_DAYS if shadow_days is None else shadow_days
    if not 1 <= days <= MAX_SHADOW_DAYS:
        raise Invalid(f"the shadow period must be 1 to {MAX_SHADOW_DAYS} days")
    version = ModelVersion.objects.select_related("policy").get(pk=version_id)
    with transaction.atomic():
        deployment = _locked(version.policy_id)
        before = deployment_state(deployment)
        now, watermark = timezone.now(), _newest_item_id()
        if mode == DeploymentMode.LIVE:
            if deployment.live_id == version.pk:
                return deployment
            if deployment.live_id is not None:
                deployment.previous_live_id = deployment.live_id
            deployment.live_id, deployment.live_since = version.pk, now
            deployment.live_from_item = deployment.live_swept_to = watermark
            if deployment.shadow_id == version.pk:
                deployment.shadow_id = deployment.shadow_since = deployment.shadow_until = None
        else:
            if deployment.live_id == version.pk:
                raise Conflict(f"{version.model_name}@{version.version_label} is live; roll back or deploy another")
            if deployment.shadow_id != version.pk:
                deployment.shadow_id, deployment.shadow_since = version.pk, now
                deployment.shadow_from_item = deployment.shadow_swept_to = watermark
            deployment.shadow_until = now + timedelta(days=days)
        _save(deployment, actor, f"model.deployed_{mode}", version, before)
    return deployment


def model_rollback(*, policy_id: int, actor: Actor) -> ModelDeployment:
    """Make the previous live version live again; the version rolled back becomes the previous one
    (so a second rollback undoes the first). Locks the deployment row; Conflict without a previous."""
    with transaction.atomic():
        deployment = _locked(policy_id)
        if deployment.previous_live_id is None:
            raise NothingToRollBack("no earlier live version to roll back to")
        before = deployment_state(deployment)
        deployment.live_id, deployment.previous_live_id = deployment.previous_live_id, deployment.live_id
        deployment.live_since, deployment.live_from_item = timezone.now(), _newest_item_id()
        deployment.live_swept_to = deployment.live_from_item
        if deployment.shadow_id == deployment.live_id:
            deployment.shadow_id = deployment.shadow_since = deployment.shadow_until = None
        version = ModelVersion.objects.select_related("policy").get(pk=deployment.live_id)
        _save(deployment, actor, "model.rolled_back", version, before)
    return deployment


def deployment_on_promotion(*, version: ModelVersion, actor: Actor = SYSTEM) -> None:
    """A newly promoted champion enters shadow for the default period. Call inside the promotion's
    transaction; it changes what runs online only once it commits."""
    with transaction.atomic():
        deployment = _locked(version.policy_id)
        if version.pk in (deployment.live_id, deployment.shadow_id):
            return
        before, now, watermark = deployment_state(deployment), timezone.now(), _newest_item_id()
        deployment.shadow_id, deployment.shadow_since = version.pk, now
        deployment.shadow_until = now + timedelta(days=settings.AL_SHADOW_DAYS)
        deployment.shadow_from_item = deployment.shadow_swept_to = watermark
        _save(deployment, actor, "model.deployed_shadow", version, before)


def _save(deployment: ModelDeployment, actor: Actor, action: str, version: ModelVersion, before: dict) -> None:
    deployment.updated_at = timezone.now()
    deployment.save()
    audit_record(
        actor=actor,
        action=action,
        object_type="model_deployment",
        object_id=deployment.pk,
        before=before,
        after={**deployment_state(deployment), "model": f"{version.model_name}@{version.version_label}"},
    )


# --- scoring ---------------------------------------------------------------------------------


def _scorers(deployment: ModelDeployment) -> Iterator[tuple[str, int, int]]:
    """(mode, version id, watermark) of what scores now: the live version, and the shadow one
    until its period ends."""
    if deployment.live_id is not None:
        yield DeploymentMode.LIVE, deployment.live_id, deployment.live_from_item
    if deployment.shadow_id is not None and deployment.shadow_until and deployment.shadow_until > timezone.now():
        yield DeploymentMode.SHADOW, deployment.shadow_id, deployment.shadow_from_item


def _active() -> Any:
    return ModelDeployment.objects.filter(Q(live__isnull=False) | Q(shadow_until__gt=timezone.now()))


def deployed_scoring_enqueue(*, item_ids: list[int]) -> int:
    """Send new items to in-app scoring in batches, when any policy has a deployed model.

    Runs after the ingest commit (the `content_ingested` receiver): one indexed query when nothing
    is deployed. Returns the number of tasks sent."""
    if not item_ids or not _active().exists():
        return 0
    batch = settings.AL_DEPLOY_BATCH
    task = deployed_score_task()
    for start in range(0, len(item_ids), batch):
        task.delay(item_ids[start : start + batch])
    return -(-len(item_ids) // batch)


def content_ingested_receiver(sender: Any, *, item_ids: list[int], **kwargs: Any) -> None:
    """Receiver of `reviewapp.signals.content_ingested` (connected in ActivelearningConfig.ready())."""
    deployed_scoring_enqueue(item_ids=item_ids)


_UNSCORED_SQL = """
SELECT i.id, i.source, i.external_id, i.text, {embedding}
FROM reviewapp_contentitem i
WHERE i.id = ANY(%(ids)s) AND i.id > %(after)s
  AND NOT EXISTS (SELECT 1 FROM reviewapp_modeldecision d
                  WHERE d.item_id = i.id AND d.policy_id = %(policy)s
                    AND d.model_name = %(name)s AND d.model_version = %(version)s)
ORDER BY i.id
"""


def deployed_items_score(*, item_ids: list[int]) -> int:
    """Score `item_ids` with every deployed version that has not scored them; returns decisions created."""
    created = 0
    for deployment in _active().select_related("policy"):
        for mode, version_id, after in _scorers(deployment):
            version = ModelVersion.objects.select_related("policy").get(pk=version_id)
            rows = _score_rows(version, item_ids, after)
            if rows:
                created += _write(deployment.pk, mode, version, rows)
    return created


def _score_rows(version: ModelVersion, item_ids: list[int], after: int) -> list[dict[str, Any]]:
    """Ingest rows for the items `version` has not decided yet and can read (text, or an embedding)."""
    sql = _UNSCORED_SQL.format(embedding="i.embedding" if version.encoder == Encoder.UPSTREAM else "NULL")
    params: dict[str, Any] = {
        "ids": list(item_ids),
        "after": after,
        "policy": version.policy_id,
        "name": version.model_name,
        "version": version.version_label,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        items = cursor.fetchall()
    if not items:
        return []
    features = item_features(
        encoder_from_stored(version.encoder_config),
        item_ids=[r[0] for r in items],
        texts=[r[3] or "" for r in items],
        embeddings=[r[4] for r in items],
    )
    kept = [item for item, keep in zip(items, features.kept, strict=True) if keep]
    if not kept:
        return []
    # The predict endpoint's rule for scores and labels, so a decision says what predict would.
    answers = predictions(
        head_probs(version, features.features),
        task=version.task,
        head_labels=version.head_labels,
        classes=version.classes,
        positive_label=version.positive_label,
    )
    return [
        {
            "source": source,
            "external_id": external_id,
            "policy": version.policy.key,
            "model_name": version.model_name,
            "model_version": version.version_label,
            "score": min(max(answer["score"], 0.0), 1.0),
            "predicted_label": answer["predicted_label"] or "",
        }
        for (_, source, external_id, _, _), answer in zip(kept, answers, strict=True)
    ]


def _write(deployment_id: int, mode: str, version: ModelVersion, rows: list[dict[str, Any]]) -> int:
    """Ingest the rows if `version` is still deployed in `mode`, under a share lock on the deployment."""
    actor = Actor(None, f"{version.model_name}@{version.version_label}")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT live_id, shadow_id, shadow_until FROM activelearning_modeldeployment WHERE id = %s FOR SHARE",
                [deployment_id],
            )
            live_id, shadow_id, shadow_until = cursor.fetchone()
        if mode == DeploymentMode.LIVE and live_id != version.pk:
            return 0
        if mode == DeploymentMode.SHADOW and (
            shadow_id != version.pk or not shadow_until or shadow_until <= timezone.now()
        ):
            return 0
        result = decisions_ingest(rows=rows, actor=actor, shadow=mode == DeploymentMode.SHADOW)
    return result.created


def deployed_items_sweep(*, limit: int = 5000) -> int:
    """Score items the after-commit scoring missed (a lost message, a worker killed), per deployed
    version: items above its sweep cursor older than AL_DEPLOY_SWEEP_AFTER_SECONDS, up to `limit`;
    the cursor then moves past them. Returns decisions created."""
    created = 0
    settled = timezone.now() - timedelta(seconds=settings.AL_DEPLOY_SWEEP_AFTER_SECONDS)
    for deployment in _active():
        for mode in (DeploymentMode.LIVE, DeploymentMode.SHADOW):
            cursor_field = f"{mode}_swept_to"
            after = max(getattr(deployment, cursor_field), getattr(deployment, f"{mode}_from_item"))
            ids = list(
                ContentItem.objects.filter(id__gt=after, created_at__lt=settled)
                .order_by("id")
                .values_list("id", flat=True)[:limit]
            )
            if not ids:
                continue
            created += deployed_items_score(item_ids=ids)
            ModelDeployment.objects.filter(pk=deployment.pk, **{f"{cursor_field}__lt": ids[-1]}).update(
                **{cursor_field: ids[-1]}
            )
    return created
