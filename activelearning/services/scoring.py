"""Scoring the unlabelled pool: a fan-out of chunk tasks over item id ranges.

`pool_scoring_start` fixes the id range [min id, max id] of content items at that moment and
splits it into chunks of `AL_SCORE_CHUNK` ids; one Celery task per chunk reads only its range
(memory is flat whatever the pool size) and any number of workers can take chunks in parallel.
A chunk writes its `PoolScore` rows and its `ScoreChunk` marker in one transaction, so a chunk
whose marker exists is skipped (resumable: redelivered or re-enqueued chunks cost nothing), and a
half-done chunk leaves nothing behind. The chunk that completes the set flips the run to done
with a compare-and-set UPDATE, so exactly one of them starts what comes next.

The pool of a policy is its own traffic without a gold label under it: items with a decision of
the policy that routed something (not a shadow model's, which routes nothing) or a review task of
the policy (any status), plus content no policy has seen yet (no decision, task or gold label
under any policy). Items that only ever appeared for other policies are never in it. Items already
queued are scored too and left out at selection time.
"""

from __future__ import annotations

import math
import resource
import time

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from activelearning.strategies import entropy_scores
from reviewapp.db import copy_rows, stage_table

from ..models import Encoder, ModelStatus, ModelVersion, RunStage, ScoreChunk, ScoringRun, ScoringStatus
from .features import encoder_from_stored, item_features
from .pipeline import enqueue_after_commit, round_stage, score_chunk_task
from .registry import head_probs
from .rounds import training_run_note


def pool_scoring_start(*, version_id: int, run_id: int | None = None, chunk_size: int | None = None) -> ScoringRun:
    """Create (or, for a round, find) the scoring run of a version and enqueue its unfinished chunks."""
    version = ModelVersion.objects.select_related("policy").get(pk=version_id)
    with transaction.atomic():
        scoring = None
        if run_id is not None:
            scoring = ScoringRun.objects.filter(model_version=version, training_run_id=run_id).first()
        if scoring is None:
            scoring = _create(version, run_id, chunk_size or settings.AL_SCORE_CHUNK)
        transaction.on_commit(lambda: scoring_run_enqueue_missing(scoring_run_id=scoring.pk))
    return scoring


def round_scoring_version(*, run_id: int) -> ModelVersion:
    """The version that scores the pool in round `run_id`: the one its scoring run already uses,
    else the policy's champion (after promotion), else the round's own model."""
    scoring = ScoringRun.objects.filter(training_run_id=run_id).select_related("model_version").first()
    if scoring is not None:
        return scoring.model_version
    version = ModelVersion.objects.get(training_run_id=run_id)
    champion = ModelVersion.objects.filter(policy_id=version.policy_id, status=ModelStatus.CHAMPION).first()
    return champion or version


def _create(version: ModelVersion, run_id: int | None, chunk_size: int) -> ScoringRun:
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id) FROM reviewapp_contentitem")
        low, high = cursor.fetchone()
    n_chunks = 0 if low is None else math.ceil((high - low + 1) / chunk_size)
    return ScoringRun.objects.create(
        policy_id=version.policy_id,
        model_version=version,
        training_run_id=run_id,
        first_id=low or 0,
        chunk_size=chunk_size,
        n_chunks=n_chunks,
    )


def scoring_run_enqueue_missing(*, scoring_run_id: int) -> int:
    """Enqueue every chunk without a marker; finish at once when there is none. Returns how many."""
    scoring = ScoringRun.objects.get(pk=scoring_run_id)
    done = set(ScoreChunk.objects.filter(scoring_run=scoring).values_list("first_id", flat=True))
    missing = [i for i in range(scoring.n_chunks) if scoring.chunk_bounds(i)[0] not in done]
    for index in missing:
        enqueue_after_commit(score_chunk_task(), scoring.pk, index)
    if not missing:
        scoring_run_maybe_finish(scoring_run_id=scoring.pk)
    return len(missing)


# Whether item `{item}` belongs to policy %(policy)s's traffic (see the module docstring); shared
# with selection so that scores left from an older scoring of the same version cannot leak in.
POOL_MEMBER_SQL = """(
    EXISTS (SELECT 1 FROM reviewapp_modeldecision d
            WHERE d.item_id = {item} AND d.policy_id = %(policy)s AND d.routing_outcome <> 'shadow')
    OR EXISTS (SELECT 1 FROM reviewapp_reviewtask t WHERE t.item_id = {item} AND t.policy_id = %(policy)s)
    OR (NOT EXISTS (SELECT 1 FROM reviewapp_modeldecision d WHERE d.item_id = {item})
        AND NOT EXISTS (SELECT 1 FROM reviewapp_reviewtask t WHERE t.item_id = {item})
        AND NOT EXISTS (SELECT 1 FROM labeling_goldlabel g WHERE g.item_id = {item}))
)"""

_POOL_SQL = """
SELECT i.id, i.text, {embedding}
FROM reviewapp_contentitem i
WHERE i.id >= %(low)s AND i.id < %(high)s
  AND NOT EXISTS (SELECT 1 FROM labeling_goldlabel g WHERE g.item_id = i.id AND g.policy_id = %(policy)s)
  AND {member}
ORDER BY i.id
"""


def pool_chunk_score(*, scoring_run_id: int, index: int) -> int:
    """Score the unlabelled items of one chunk; idempotent. Returns the number of items scored now."""
    scoring = ScoringRun.objects.select_related("model_version__policy").get(pk=scoring_run_id)
    low, high = scoring.chunk_bounds(index)
    if ScoreChunk.objects.filter(scoring_run=scoring, first_id=low).exists():
        return 0
    started = time.perf_counter()
    version = scoring.model_version
    sql = _POOL_SQL.format(
        embedding="i.embedding" if version.encoder == Encoder.UPSTREAM else "NULL",
        member=POOL_MEMBER_SQL.format(item="i.id"),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"low": low, "high": high, "policy": version.policy_id})
        rows = cursor.fetchall()
    encoder = encoder_from_stored(version.encoder_config)
    features = item_features(
        encoder, item_ids=[r[0] for r in rows], texts=[r[1] or "" for r in rows], embeddings=[r[2] for r in rows]
    )
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)[features.kept]
    probs = head_probs(version, features.features) if len(ids) else np.zeros((0, len(version.head_labels)))
    _write(scoring, low, ids, probs, version.head_labels.index(version.positive_label), started)
    return len(ids)


def _write(scoring: ScoringRun, low: int, ids: np.ndarray, probs: np.ndarray, positive: int, started: float) -> None:
    uncertainty = entropy_scores(probs) if len(ids) else np.zeros(0)
    with transaction.atomic():
        stage_table("stage_poolscores", "item_id bigint, probs float8[], score float8, uncertainty float8")
        copy_rows(
            "stage_poolscores",
            ("item_id", "probs", "score", "uncertainty"),
            (
                (int(item_id), "{" + ",".join(repr(float(p)) for p in row) + "}", float(row[positive]), float(u))
                for item_id, row, u in zip(ids, probs, uncertainty, strict=True)
            ),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO activelearning_poolscore (model_version_id, item_id, probs, score, uncertainty)
                SELECT %s, item_id, probs, score, uncertainty FROM stage_poolscores ORDER BY item_id
                ON CONFLICT (model_version_id, item_id) DO NOTHING
                """,
                [scoring.model_version_id],
            )
            cursor.execute(
                """
                INSERT INTO activelearning_scorechunk (scoring_run_id, first_id, n_scored, seconds, max_rss_kb)
                VALUES (%s, %s, %s, %s, %s) ON CONFLICT (scoring_run_id, first_id) DO NOTHING
                """,
                [
                    scoring.pk,
                    low,
                    len(ids),
                    time.perf_counter() - started,
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                ],
            )


def scoring_run_maybe_finish(*, scoring_run_id: int) -> int | None:
    """Flip the run to done if every chunk has its marker (compare-and-set: one caller wins).

    Returns the round id to continue when this call finished the run, else None. Also moves the
    round's progress bar along.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE activelearning_scoringrun s
               SET status = %s, finished_at = statement_timestamp(),
                   items_scored = (SELECT coalesce(sum(n_scored), 0) FROM activelearning_scorechunk c
                                    WHERE c.scoring_run_id = s.id)
             WHERE s.id = %s AND s.status = %s
               AND (SELECT count(*) FROM activelearning_scorechunk c WHERE c.scoring_run_id = s.id) >= s.n_chunks
            RETURNING s.training_run_id, s.items_scored
            """,
            [ScoringStatus.DONE, scoring_run_id, ScoringStatus.RUNNING],
        )
        row = cursor.fetchone()
    if row is not None:
        if row[0] is not None:
            training_run_note(run_id=row[0], message=f"scored {row[1]} pool items")
        return row[0] if row[0] is not None else None
    _note_progress(scoring_run_id)
    return None


def _note_progress(scoring_run_id: int) -> None:
    scoring = ScoringRun.objects.filter(pk=scoring_run_id).values("training_run_id", "n_chunks").first()
    if not scoring or scoring["training_run_id"] is None or not scoring["n_chunks"]:
        return
    done = ScoreChunk.objects.filter(scoring_run_id=scoring_run_id).count()
    low, high = round_stage(RunStage.SCORING).progress, round_stage(RunStage.SELECTING).progress
    training_run_note(run_id=scoring["training_run_id"], progress=low + (high - low) * done / scoring["n_chunks"])


def pool_scores_prune(*, keep_per_policy: int = 2, batch: int = 50_000) -> int:
    """Delete pool scores of all but the newest `keep_per_policy` finished scorings per policy, in batches."""
    keep = set()
    for policy_id in ScoringRun.objects.values_list("policy_id", flat=True).distinct():
        newest = ScoringRun.objects.filter(policy_id=policy_id, status=ScoringStatus.DONE).order_by("-finished_at")
        keep |= set(newest.values_list("model_version_id", flat=True)[:keep_per_policy])
    keep |= set(ScoringRun.objects.filter(status=ScoringStatus.RUNNING).values_list("model_version_id", flat=True))
    deleted = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                DELETE FROM activelearning_poolscore WHERE id IN (
                    SELECT id FROM activelearning_poolscore WHERE NOT (model_version_id = ANY(%s)) LIMIT %s)
                """,
                [sorted(keep), batch],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < batch:
                return deleted
