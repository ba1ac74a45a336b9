"""Celery tasks of active learning: thin, idempotent, time-limited; they take ids and call services.

Routing (settings.CELERY_TASK_ROUTES): training, evaluation, promotion and threshold proposals
run on the `training` queue (CPU-heavy, later GPU workers); pool scoring and selection on
`scoring`. Every task is safe to run twice — a redelivery after a worker died (acks_late) or a
stalled round re-sent by `resume_stalled_rounds` — so acknowledgement comes after the work.
A task that fails for good marks its round failed with the error, so the round page says why.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from reviewapp.retry import HEAVY

from .models import ModelStatus, ModelVersion, RunStage, RunTrigger, ScoringRun, TrainingRun
from .services.evaluation import model_version_evaluate
from .services.promotion import model_version_promote
from .services.rounds import round_continue, training_run_fail, training_run_finish
from .services.scoring import pool_chunk_score, pool_scores_prune, pool_scoring_start, scoring_run_maybe_finish
from .services.selection import SelectionError, selection_round_run
from .services.thresholds import thresholds_propose
from .services.training import training_run_execute
from .services.triggers import rounds_resume_stalled, rounds_start_due


class RoundTask(Task):
    """Marks the round failed once retries are exhausted (the run id is found in the arguments)."""

    run_id_argument: str | int = "run_id"

    def on_failure(self, exc: BaseException, task_id: str, args: tuple, kwargs: dict, einfo: Any) -> None:
        run_id = _run_id(self.name, args, kwargs)
        if run_id is not None:
            training_run_fail(run_id=run_id, error=f"{self.name} failed: {type(exc).__name__}: {exc}")


def _run_id(name: str, args: tuple, kwargs: dict) -> int | None:
    if "run_id" in kwargs:
        return kwargs["run_id"]
    if name == "activelearning.retrain" or name == "activelearning.select_batch":
        return args[0] if args else None
    if name == "activelearning.score_chunk" and args:
        return ScoringRun.objects.filter(pk=args[0]).values_list("training_run_id", flat=True).first()
    return args[1] if len(args) > 1 else None


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
        training_run_finish(run_id=run_id, message=f"registered {version}; training-only round finished")
    else:
        round_continue(
            run_id, "evaluate", version.pk, run_id, stage=RunStage.EVALUATING, message="evaluating on held-out gold"
        )
    return version.pk


@shared_task(base=RoundTask, name="activelearning.evaluate", time_limit=1800, soft_time_limit=1740, **HEAVY)
def evaluate(version_id: int, run_id: int | None = None) -> None:
    metrics = model_version_evaluate(version_id=version_id)
    if run_id is not None:
        summary = f"macro-F1 {metrics.get('macro_f1')} on {metrics.get('n')} held-out items"
        round_continue(run_id, "promote", version_id, run_id, stage=RunStage.PROMOTING, message=summary)


@shared_task(base=RoundTask, name="activelearning.promote", time_limit=1800, soft_time_limit=1740, **HEAVY)
def promote(version_id: int, run_id: int | None = None) -> str:
    decision = model_version_promote(version_id=version_id)
    if run_id is not None:
        champion = ModelVersion.objects.filter(policy_id=decision.policy_id, status=ModelStatus.CHAMPION).first()
        scorer = champion or decision.challenger
        message = f"{decision.outcome}: {' '.join(decision.reasons)} Scoring the pool with {scorer.version_label}."
        round_continue(run_id, "score_pool", scorer.pk, run_id, stage=RunStage.SCORING, message=message)
    return decision.outcome


@shared_task(base=RoundTask, name="activelearning.score_pool", time_limit=600, soft_time_limit=570, **HEAVY)
def score_pool(version_id: int, run_id: int | None = None) -> int:
    """Fan out one `score_chunk` per item id range (resumable: finished chunks are skipped)."""
    return pool_scoring_start(version_id=version_id, run_id=run_id).pk


@shared_task(base=RoundTask, name="activelearning.score_chunk", time_limit=1800, soft_time_limit=1740, **HEAVY)
def score_chunk(scoring_run_id: int, index: int) -> int:
    scored = pool_chunk_score(scoring_run_id=scoring_run_id, index=index)
    run_id = scoring_run_maybe_finish(scoring_run_id=scoring_run_id)
    if run_id is not None:
        round_continue(run_id, "select_batch", run_id, stage=RunStage.SELECTING, message="selecting items")
    return scored


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
    round_continue(run_id, "propose_thresholds", run.policy_id, run_id, stage=RunStage.THRESHOLDS, message=message)
    return selection.pk


@shared_task(base=RoundTask, name="activelearning.propose_thresholds", time_limit=900, soft_time_limit=840, **HEAVY)
def propose_thresholds(policy_id: int, run_id: int | None = None) -> int | None:
    """Propose routing thresholds for the policy's champion; a lead approves them on the models page."""
    champion = ModelVersion.objects.filter(policy_id=policy_id, status=ModelStatus.CHAMPION).first()
    proposal = thresholds_propose(version_id=champion.pk) if champion else None
    if run_id is not None:
        done = f"threshold proposal {proposal.pk} waits for a lead" if proposal else "no champion: no thresholds"
        training_run_finish(run_id=run_id, message=done)
    return proposal.pk if proposal else None


@shared_task(name="activelearning.retrain_on_new_gold", time_limit=300, soft_time_limit=280, **HEAVY)
def retrain_on_new_gold() -> int:
    return len(rounds_start_due(trigger=RunTrigger.NEW_GOLD))


@shared_task(name="activelearning.retrain_scheduled", time_limit=300, soft_time_limit=280, **HEAVY)
def retrain_scheduled() -> int:
    return len(rounds_start_due(trigger=RunTrigger.SCHEDULE))


@shared_task(name="activelearning.resume_stalled_rounds", time_limit=300, soft_time_limit=280, **HEAVY)
def resume_stalled_rounds() -> int:
    return rounds_resume_stalled()


@shared_task(name="activelearning.prune_pool_scores", time_limit=1800, soft_time_limit=1740, **HEAVY)
def prune_pool_scores() -> int:
    return pool_scores_prune()
