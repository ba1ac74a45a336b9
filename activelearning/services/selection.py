"""Selecting the next items for reviewers from a scored pool, with the numeric core's strategies.

The candidates are scored items of the model in the policy's pool (its own traffic, see
`scoring.POOL_MEMBER_SQL`) that have no gold label and no live task under the policy (any queue;
cancelled tasks do not count). For pools of millions, the strategy looks at a
bounded candidate set: the `budget × 20` (at most `AL_MAX_CANDIDATES`) most uncertain items for
uncertainty strategies and BADGE, a seeded uniform sample for random and core-set. The picks
become `ReviewTask(reason=active_learning)` through `review_task_open`, ordered by the usual task
priority (severity × uncertainty × reach) with the strategy's rank as tie-breaker.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from activelearning.strategies import PoolView, Strategy, get_strategy
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.models import TaskReason
from reviewapp.services.routing import task_priority
from reviewapp.services.tasks import TaskSpec, review_task_open

from ..models import Encoder, ModelVersion, SelectionRound
from .features import encoder_from_stored, item_features
from .registry import loaded_model
from .rounds import review_queue_for
from .scoring import POOL_MEMBER_SQL

CANDIDATE_FACTOR = 20
MC_SAMPLES = 20
_DIVERSITY_FIRST = ("random", "coreset")


class SelectionError(ValueError):
    """A selection that cannot be made (no queue to send items to)."""


_CANDIDATES_SQL = """
SELECT ps.item_id, ps.probs, ps.score, ps.uncertainty, i.text, i.reach, {embedding}
FROM activelearning_poolscore ps JOIN reviewapp_contentitem i ON i.id = ps.item_id
WHERE ps.model_version_id = %(version)s
  AND NOT EXISTS (SELECT 1 FROM labeling_goldlabel g WHERE g.item_id = ps.item_id AND g.policy_id = %(policy)s)
  AND NOT EXISTS (SELECT 1 FROM reviewapp_reviewtask t
                  WHERE t.item_id = ps.item_id AND t.policy_id = %(policy)s AND t.status <> 'cancelled')
  AND {member}
ORDER BY {order}
LIMIT %(limit)s
"""


def selection_round_run(
    *,
    version_id: int,
    strategy: str,
    budget: int,
    balanced: bool = False,
    queue_id: int | None = None,
    run_id: int | None = None,
    actor: Actor = SYSTEM,
) -> SelectionRound:
    """Pick `budget` items with `strategy` and open active-learning tasks for them.

    Idempotent per round: a round that already selected returns its selection (the one-to-one
    `SelectionRound.training_run` makes a concurrent duplicate roll back entirely, tasks included).
    """
    if run_id is not None:
        existing = SelectionRound.objects.filter(training_run_id=run_id).first()
        if existing is not None:
            return existing
    version = ModelVersion.objects.select_related("policy").get(pk=version_id)
    queue = review_queue_for(version.policy, queue_id)
    if queue is None:
        raise SelectionError(f"no active review queue for policy {version.policy.key}")
    chosen_strategy = get_strategy(strategy, balanced=balanced)
    rows = _candidates(version, chosen_strategy, budget)
    picked = _pick(version, chosen_strategy, rows, budget, seed=run_id or version.pk)
    specs = [
        TaskSpec(
            item_id=rows[i][0],
            policy_id=version.policy_id,
            queue=queue,
            reason=TaskReason.ACTIVE_LEARNING,
            priority=task_priority(severity_weight=version.policy.severity_weight, score=rows[i][2], reach=rows[i][5])
            + 1e-3 * (len(picked) - rank) / max(len(picked), 1),
        )
        for rank, i in enumerate(picked)
    ]
    try:
        with transaction.atomic():
            created = {spec.item_id: task_id for spec, task_id in review_task_open(specs=specs, actor=actor)}
            chosen = [
                {
                    "rank": rank + 1,
                    "item_id": rows[i][0],
                    "task_id": created.get(rows[i][0]),
                    "score": round(rows[i][2], 4),
                    "uncertainty": round(rows[i][3], 4),
                }
                for rank, i in enumerate(picked)
            ]
            selection = SelectionRound.objects.create(
                policy_id=version.policy_id,
                model_version=version,
                training_run_id=run_id,
                queue=queue,
                strategy=chosen_strategy.name,
                budget=budget,
                candidates=len(rows),
                chosen=chosen,
                tasks_created=len(created),
                actor_label=actor.label,
            )
            audit_record(
                actor=actor,
                action="selection_round.created",
                object_type="selection_round",
                object_id=selection.pk,
                after={
                    "model_version": version.pk,
                    "strategy": selection.strategy,
                    "budget": budget,
                    "tasks_created": len(created),
                    "queue_id": queue.pk,
                },
            )
    except IntegrityError:
        if run_id is None:
            raise
        return SelectionRound.objects.get(training_run_id=run_id)
    return selection


def _candidates(version: ModelVersion, strategy: Strategy, budget: int) -> list[tuple[Any, ...]]:
    limit = min(max(budget * CANDIDATE_FACTOR, 1000), settings.AL_MAX_CANDIDATES)
    base = strategy.name.split("+")[0]
    order = (
        "md5(ps.item_id::text || %(salt)s), ps.item_id"
        if base in _DIVERSITY_FIRST
        else "ps.uncertainty DESC, ps.item_id"
    )
    sql = _CANDIDATES_SQL.format(
        order=order,
        embedding="i.embedding" if version.encoder == Encoder.UPSTREAM else "NULL",
        member=POOL_MEMBER_SQL.format(item="ps.item_id"),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql, {"version": version.pk, "policy": version.policy_id, "limit": limit, "salt": f"al-sample-{version.pk}"}
        )
        return cursor.fetchall()


def _pick(version: ModelVersion, strategy: Strategy, rows: list[tuple[Any, ...]], budget: int, seed: int) -> list[int]:
    if not rows:
        return []
    probs = np.asarray([r[1] if isinstance(r[1], list) else json.loads(r[1]) for r in rows], dtype=np.float64)
    view = PoolView(probs=probs, covered=np.zeros(len(rows), dtype=bool))
    if strategy.needs:
        view = _with_model_views(version, strategy, view, rows, seed)
    return strategy.select(view, budget, np.random.default_rng(seed)).tolist()


def _with_model_views(
    version: ModelVersion, strategy: Strategy, view: PoolView, rows: list[tuple[Any, ...]], seed: int
) -> PoolView:
    """Fill what BALD, core-set and BADGE need: MC-dropout samples, vectors, penultimate activations."""
    encoder = encoder_from_stored(version.encoder_config)
    features = item_features(
        encoder, item_ids=[r[0] for r in rows], texts=[r[4] or "" for r in rows], embeddings=[r[6] for r in rows]
    )
    # Every candidate was scored with this encoder, so all are readable; guard anyway.
    candidates = features.kept.copy()
    head = loaded_model(version).head
    n, width = len(rows), len(version.head_labels)
    mc = hidden = dense = None
    if "mc_probs" in strategy.needs:
        mc = np.full((MC_SAMPLES, n, width), 0.5)
        mc[:, candidates] = head.mc_dropout_proba(features.features, samples=MC_SAMPLES, seed=seed)
    if "hidden" in strategy.needs or "embeddings" in strategy.needs:
        activations = head.embed(features.features)
        hidden = np.zeros((n, activations.shape[1]))
        hidden[candidates] = activations
        if "embeddings" in strategy.needs:
            dense = (
                np.zeros((n, features.features.shape[1]))
                if isinstance(features.features, np.ndarray)
                else hidden.copy()
            )
            if isinstance(features.features, np.ndarray):
                dense[candidates] = features.features
    return PoolView(
        probs=view.probs, covered=view.covered, candidates=candidates, mc_probs=mc, embeddings=dense, hidden=hidden
    )
