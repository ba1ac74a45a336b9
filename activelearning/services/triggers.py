"""When rounds start without a person: N new gold labels, a schedule, and stalled rounds resumed.

Celery beat (django-celery-beat) calls these periodically; each is cheap when there is nothing
to do (a count per policy). Automatic rounds use the default parameters.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from labeling.models import GoldLabel, Policy
from reviewapp.audit import SYSTEM

from ..models import ACTIVE_RUN_STATUSES, ModelVersion, RunStage, RunTrigger, ScoringRun, TrainingRun
from .rounds import RoundAlreadyActive, _enqueue, training_run_note, training_run_start

logger = logging.getLogger(__name__)


def _new_gold_since_last_round(policy: Policy) -> tuple[int, TrainingRun | None]:
    last = TrainingRun.objects.filter(policy=policy, gold_watermark__isnull=False).order_by("-created_at").first()
    watermark = last.gold_watermark if last else 0
    return GoldLabel.objects.filter(policy=policy, id__gt=watermark).count(), last


def rounds_start_due(*, trigger: str) -> list[TrainingRun]:
    """Start a round for each active policy that is due; returns the rounds started.

    NEW_GOLD: at least `AL_RETRAIN_EVERY_N_GOLD` gold labels since the last round's watermark.
    SCHEDULE: any new gold, and the last round is older than `AL_RETRAIN_EVERY_HOURS`.
    """
    started = []
    for policy in Policy.objects.filter(is_active=True):
        if TrainingRun.objects.filter(policy=policy, status__in=ACTIVE_RUN_STATUSES).exists():
            continue
        new, last = _new_gold_since_last_round(policy)
        if trigger == RunTrigger.NEW_GOLD:
            due = new >= settings.AL_RETRAIN_EVERY_N_GOLD
        else:
            age_limit = timezone.now() - timedelta(hours=settings.AL_RETRAIN_EVERY_HOURS)
            due = new > 0 and (last is None or last.created_at < age_limit)
        if not due or GoldLabel.objects.filter(policy=policy).count() < settings.AL_MIN_GOLD:
            continue
        try:
            started.append(training_run_start(policy=policy, actor=SYSTEM, params={}, trigger=trigger))
        except (RoundAlreadyActive, ValidationError) as error:
            logger.info("no automatic round for %s: %s", policy.key, error)
    return started


# The task that carries a round forward from each stage (all are idempotent, so re-sending is safe).
_RESUME: dict[str, str] = {
    RunStage.QUEUED: "retrain",
    RunStage.LOADING: "retrain",
    RunStage.EMBEDDING: "retrain",
    RunStage.TRAINING: "retrain",
    RunStage.REGISTERING: "retrain",
    RunStage.EVALUATING: "evaluate",
    RunStage.PROMOTING: "promote",
    RunStage.SELECTING: "select_batch",
    RunStage.THRESHOLDS: "propose_thresholds",
}


def rounds_resume_stalled() -> int:
    """Re-send the current step of rounds with no progress for `AL_STALL_MINUTES` (e.g. messages
    lost when Redis restarted); returns how many. Longer than any task's time limit, so a step
    still running is never duplicated by this."""
    cutoff = timezone.now() - timedelta(minutes=settings.AL_STALL_MINUTES)
    resumed = 0
    for run in TrainingRun.objects.filter(status__in=ACTIVE_RUN_STATUSES, updated_at__lt=cutoff):
        version = ModelVersion.objects.filter(training_run=run).first()
        scoring = ScoringRun.objects.filter(training_run=run).first()
        args: tuple | None
        if version is None or _RESUME.get(run.stage) == "retrain":
            args = ("retrain", run.pk)
        elif run.stage == RunStage.SCORING:
            args = ("score_pool", scoring.model_version_id, run.pk) if scoring else ("promote", version.pk, run.pk)
        elif run.stage == RunStage.SELECTING:
            args = ("select_batch", run.pk)
        elif run.stage == RunStage.THRESHOLDS:
            args = ("propose_thresholds", run.policy_id, run.pk)
        elif run.stage in _RESUME:
            args = (_RESUME[run.stage], version.pk, run.pk)
        else:
            args = None
        if args is None:
            continue
        training_run_note(run_id=run.pk, message=f"no progress for {settings.AL_STALL_MINUTES} min: re-sent {args[0]}")
        _enqueue(*args)
        resumed += 1
    return resumed
