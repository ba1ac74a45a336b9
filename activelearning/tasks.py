"""Celery tasks of active learning: thin, idempotent, time-limited; they take ids and call services.

Routing (settings.CELERY_TASK_ROUTES): training, evaluation, promotion and threshold proposals
run on the `training` queue (CPU-heavy, later GPU workers); pool scoring and selection on
`scoring`. Every task is safe to run twice — a redelivery after a worker died (acks_late) or a
stalled round re-sent by `resume_stalled_rounds` — so acknowledgement comes after the work.
A task that fails for good marks its round failed with the error, so the round page says why.
Which task carries a round on from which stage is declared once, in `services/pipeline.py`.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from reviewapp.retry import HEAVY, LATE_ACK

from .models import ModelStatus, ModelVersion, RunStage, RunTrigger, ScoringRun, TrainingRun
from .services.deployment import deployed_items_score, deployed_items_sweep
from .services.drift import drift_all_policies
from .services.evaluation import model_version_evaluate
from .services.label_error_loop import label_error_run_after_round, label_error_runs_start_due
from .services.out_of_fold import label_error_run_execute, label_error_run_fail
from .services.promotion import model_version_promote
from .services.rounds import round_continue, training_run_fail, training_run_finish
from .services.scoring import (
    pool_chunk_score,
    pool_scores_prune,
    pool_scoring_start,
    round_scoring_version,
    scoring_run_maybe_finish,
)
from .services.selection import SelectionError, selection_round_run
from .services.thresholds import thresholds_propose
from .services.training import training_run_execute
from .services.triggers import rounds_resume_stalled, rounds_start_due


class RoundTask(Task):
    """A stage of a round: takes the run id alone, and fails the round once retries are exhausted.

    Messages sent before every stage task took the run id alone carried it last, after a version
    or policy id (`evaluate(version_id, run_id)`); they are still in Redis during an upgrade, so
    the run id is read as the last positional argument, and the ones before it are dropped.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args[-1:], **kwargs)

    def round_id(self, args: tuple, kwargs: dict) -> int | None:
        return kwargs.get("run_id", args[-1] if args else None)

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        run_id = self.round_id(args, kwargs)
        if run_id is not None:
            training_run_fail(run_id=run_id, error=f"{self.name} failed: {type(exc).__name__}: {exc}")


class ScoreChunkTask(Task):
    """One chunk of pool scoring: fails the round the scoring run belongs to (if any) for good."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        scoring_run_id = args[0] if args else kwargs.get("scoring_run_id")
        if scoring_run_id is None:
            return
        run_id = ScoringRun.objects.filter(pk=scoring_run_id).values_list("training_run_id", flat=True).first()
        if run_id is not None:
            training_run_fail(run_id=run_id, error=f"{self.name} failed: {type(exc).__name__}: {exc}")


@shared_task(
    base=RoundTask,
    name="activelearning.retrain",
    time_limit=settings.AL_TRAIN_TIME_LIMIT,
    soft_time_limit=settings.AL_TRAIN_TIME_LIMIT - 60,
    **HEAVY,
)
def retrain(run_id: int) -> int | None:
    """Train and register the round's model, then continue the round (or end it for pipeline=train)."""
    version = training_run_execute(run_id=run_id)
    if version is None:
        return None
    run = TrainingRun.objects.get(pk=run_id)
    if run.params.get("pipeline") == "train":
        _round_finished(run_id, f"registered {version}; training-only round finished")
    else:
        round_continue(run_id=run_id, stage=RunStage.EVALUATING, message="evaluating on held-out gold")
    return version.pk


@shared_task(base=RoundTask, name="activelearning.evaluate", time_limit=1800, soft_time_limit=1740, **HEAVY)
def evaluate(run_id: int) -> None:
    """Evaluate the round's model on held-out gold."""
    metrics = model_version_evaluate(version_id=ModelVersion.objects.get(training_run_id=run_id).pk)
    summary = f"macro-F1 {metrics.get('macro_f1')} on {metrics.get('n')} held-out items"
    round_continue(run_id=run_id, stage=RunStage.PROMOTING, message=summary)


@shared_task(base=RoundTask, name="activelearning.promote", time_limit=1800, soft_time_limit=1740, **HEAVY)
def promote(run_id: int) -> str:
    """Champion / challenger for the round's model; the pool is then scored by the champion."""
    decision = model_version_promote(version_id=ModelVersion.objects.get(training_run_id=run_id).pk)
    scorer = round_scoring_version(run_id=run_id)
    message = f"{decision.outcome}: {' '.join(decision.reasons)} Scoring the pool with {scorer.version_label}."
    round_continue(run_id=run_id, stage=RunStage.SCORING, message=message)
    return decision.outcome


@shared_task(base=RoundTask, name="activelearning.score_pool", time_limit=600, soft_time_limit=570, **HEAVY)
def score_pool(run_id: int) -> int:
    """Fan out one `score_chunk` per item id range (resumable: finished chunks are skipped)."""
    return pool_scoring_start(version_id=round_scoring_version(run_id=run_id).pk, run_id=run_id).pk


@shared_task(base=ScoreChunkTask, name="activelearning.score_chunk", time_limit=1800, soft_time_limit=1740, **HEAVY)
def score_chunk(scoring_run_id: int, index: int) -> int:
    """Score one chunk; the chunk that completes the scoring run moves its round on to selection."""
    scored = pool_chunk_score(scoring_run_id=scoring_run_id, index=index)
    run_id = scoring_run_maybe_finish(scoring_run_id=scoring_run_id)
    if run_id is not None:
        round_continue(run_id=run_id, stage=RunStage.SELECTING, message="selecting items")
    return scored


@shared_task(name="activelearning.score_deployed", time_limit=600, soft_time_limit=570, **HEAVY)
def score_deployed(item_ids: list[int]) -> int:
    """Score new content items with the live and shadow versions (idempotent per item and version)."""
    return deployed_items_score(item_ids=item_ids)


@shared_task(name="activelearning.score_deployed_sweep", time_limit=900, soft_time_limit=870, **HEAVY)
def score_deployed_sweep() -> int:
    """Score new items the after-commit scoring missed."""
    return deployed_items_sweep()


@shared_task(base=RoundTask, name="activelearning.select_batch", time_limit=1800, soft_time_limit=1740, **HEAVY)
def select_batch(run_id: int) -> int | None:
    """Select the round's batch from the pool scored in this round; continue to thresholds."""
    run = TrainingRun.objects.get(pk=run_id)
    scoring = ScoringRun.objects.filter(training_run=run).order_by("-pk").first()
    if scoring is None:
        return None
    params = run.params
    try:
        selection = selection_round_run(
            version_id=scoring.model_version_id,
            strategy=params["strategy"],
            budget=params["budget"],
            balanced=params.get("balanced", False),
            queue_id=params.get("queue_id"),
            run_id=run_id,
        )
    except SelectionError as error:
        training_run_fail(run_id=run_id, error=str(error))
        return None
    message = f"{selection.tasks_created} active-learning tasks in {selection.queue} ({selection.strategy})"
    round_continue(run_id=run_id, stage=RunStage.THRESHOLDS, message=message)
    return selection.pk


@shared_task(base=RoundTask, name="activelearning.propose_thresholds", time_limit=900, soft_time_limit=840, **HEAVY)
def propose_thresholds(run_id: int) -> int | None:
    """Propose routing thresholds for the policy's champion; a lead approves them on the models page."""
    policy_id = TrainingRun.objects.values_list("policy_id", flat=True).get(pk=run_id)
    champion = ModelVersion.objects.filter(policy_id=policy_id, status=ModelStatus.CHAMPION).first()
    proposal = thresholds_propose(version_id=champion.pk) if champion else None
    done = f"threshold proposal {proposal.pk} waits for a lead" if proposal else "no champion: no thresholds"
    _round_finished(run_id, done)
    return proposal.pk if proposal else None


def _round_finished(run_id: int, message: str) -> None:
    """End the round, then start its label-error check (once: a redelivery finds the one it started)."""
    training_run_finish(run_id=run_id, message=message)
    label_error_run_after_round(training_run_id=run_id)


@shared_task(name="activelearning.retrain_on_new_gold", time_limit=300, soft_time_limit=280, **HEAVY)
def retrain_on_new_gold() -> int:
    return len(rounds_start_due(trigger=RunTrigger.NEW_GOLD))


@shared_task(name="activelearning.retrain_scheduled", time_limit=300, soft_time_limit=280, **HEAVY)
def retrain_scheduled() -> int:
    return len(rounds_start_due(trigger=RunTrigger.SCHEDULE))


@shared_task(name="activelearning.resume_stalled_rounds", time_limit=300, soft_time_limit=280, **HEAVY)
def resume_stalled_rounds() -> int:
    return rounds_resume_stalled()


@shared_task(name="activelearning.find_label_errors_scheduled", time_limit=300, soft_time_limit=280, **HEAVY)
def find_label_errors_scheduled() -> int:
    return len(label_error_runs_start_due())


@shared_task(name="activelearning.measure_drift", time_limit=900, soft_time_limit=870, **LATE_ACK)
def measure_drift() -> int:
    """Measure drift of every policy with a champion; /metrics reports the latest measurements."""
    return sum(1 for measured in drift_all_policies() if measured.alert)


@shared_task(name="activelearning.prune_pool_scores", time_limit=1800, soft_time_limit=1740, **HEAVY)
def prune_pool_scores() -> int:
    return pool_scores_prune()


class LabelErrorRunTask(Task):
    """An out-of-fold label-error check: fails its run, with the error, once retries are exhausted."""

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        run_id = kwargs.get("run_id", args[0] if args else None)
        if run_id is not None:
            label_error_run_fail(run_id=run_id, error=f"{self.name} failed: {type(exc).__name__}: {exc}")


@shared_task(
    base=LabelErrorRunTask,
    name="activelearning.find_label_errors",
    time_limit=settings.AL_TRAIN_TIME_LIMIT,
    soft_time_limit=settings.AL_TRAIN_TIME_LIMIT - 60,
    **HEAVY,
)
def find_label_errors(run_id: int) -> int | None:
    """Train k heads on the policy's gold, score each fold out of fold, rank (and queue) likely label errors."""
    run = label_error_run_execute(run_id=run_id)
    return run.candidates_found if run is not None else None
