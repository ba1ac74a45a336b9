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

from ..models import ACTIVE_RUN_STATUSES, ModelVersion, RunTrigger, TrainingRun
from .pipeline import enqueue_after_commit, round_stages
from .rounds import RoundAlreadyActive, training_run_note, training_run_start

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


def rounds_resume_stalled() -> int:
    """Re-send the current stage's task of rounds with no progress for `AL_STALL_MINUTES` (e.g.
    messages lost when Redis restarted); returns how many. Longer than any task's time limit, so a
    step still running is never duplicated by this. A round without a registered model starts over
    from training (every stage task is idempotent, so re-sending is safe)."""
    cutoff = timezone.now() - timedelta(minutes=settings.AL_STALL_MINUTES)
    stages = {stage.name: stage for stage in round_stages()}
    resumed = 0
    for run in TrainingRun.objects.filter(status__in=ACTIVE_RUN_STATUSES, updated_at__lt=cutoff):
        if not ModelVersion.objects.filter(training_run=run).exists():
            task = round_stages()[0].task
        else:
            task = stages[run.stage].task if run.stage in stages else None
        if task is None:
            continue
        name = task.name.removeprefix("activelearning.")
        training_run_note(run_id=run.pk, message=f"no progress for {settings.AL_STALL_MINUTES} min: re-sent {name}")
        enqueue_after_commit(task, run.pk)
        resumed += 1
    return resumed
