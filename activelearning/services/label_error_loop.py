"""Label-error checks as part of the loop: after every round, on a schedule, and back to reviewers.

- `label_error_run_after_round`: a finished round starts an out-of-fold check of the policy's gold
  with the round's encoder and head settings (`services/out_of_fold.py`). One check per round
  (`LabelErrorRun.training_run` is unique), so a redelivered end of round starts nothing twice.
- `label_error_runs_start_due`: the beat starts a check for a policy whose gold grew since its
  last check, when that check is older than `AL_LABEL_ERRORS_EVERY_HOURS`.
- `label_error_suspects_send`: a lead picks suspects of a finished run and sends them to
  re-review (`reason=label_error` tasks through `labeling.services.relabel.review_tasks_open`,
  the path every re-review takes); what reviewers decide becomes a new gold version by consensus.

Automatic checks open no task: people choose what to re-review on the run's page.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.models import GoldLabel, Policy
from labeling.services.relabel import gold_current_labels, gold_with_pending_review, review_tasks_open
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.models import Queue, TaskReason

from ..models import ACTIVE_RUN_STATUSES, LabelErrorRun, LabelErrorTrigger, RunStatus, TrainingRun
from .datasets import TrainingDataError, gold_watermark, label_space
from .out_of_fold import label_error_run_start

logger = logging.getLogger(__name__)

_ROUND_PARAMS = ("encoder", "num_buckets", "positive_label", "head")


def _checkable(policy: Policy) -> bool:
    """Single-label policies with a version in force (a check needs one gold label per item)."""
    try:
        return label_space(policy).task != "multilabel"
    except TrainingDataError:
        return False


def _params_from_round(run: TrainingRun | None) -> dict[str, Any]:
    params = {key: run.params[key] for key in _ROUND_PARAMS if run is not None and key in run.params}
    return {**params, "k": settings.AL_LABEL_ERRORS_FOLDS, "top_k": settings.AL_LABEL_ERRORS_TOP_K}


def label_error_run_after_round(*, training_run_id: int) -> LabelErrorRun | None:
    """Start (once) the check that follows a succeeded round; its task is sent after commit.

    Idempotent: returns the round's existing check when there is one. None when the round did not
    succeed, checks after rounds are off (`AL_LABEL_ERRORS_AFTER_ROUND`), or the policy's labels
    cannot be checked (several labels per item).
    """
    run = TrainingRun.objects.select_related("policy").get(pk=training_run_id)
    existing = LabelErrorRun.objects.filter(training_run=run).first()
    if existing is not None or run.status != RunStatus.SUCCEEDED:
        return existing
    if not settings.AL_LABEL_ERRORS_AFTER_ROUND or not _checkable(run.policy):
        return None
    try:
        return label_error_run_start(
            policy=run.policy,
            actor=SYSTEM,
            params=_params_from_round(run),
            trigger=LabelErrorTrigger.ROUND,
            training_run=run,
        )
    except IntegrityError:  # another delivery of the round's end got there first
        return LabelErrorRun.objects.get(training_run=run)
    except ValidationError as error:  # e.g. the round's positive label left the schema since
        logger.info("no label-error check after round %s: %s", run.pk, error)
        return None


def label_error_runs_start_due() -> list[LabelErrorRun]:
    """Start a scheduled check for each active policy that is due; returns the checks started.

    Due: no check queued or running, at least `AL_MIN_GOLD` gold labels, gold newer than the last
    check's watermark, and that check older than `AL_LABEL_ERRORS_EVERY_HOURS` (or none yet).
    """
    started = []
    age_limit = timezone.now() - timedelta(hours=settings.AL_LABEL_ERRORS_EVERY_HOURS)
    for policy in Policy.objects.filter(is_active=True):
        runs = LabelErrorRun.objects.filter(policy=policy)
        if runs.filter(status__in=ACTIVE_RUN_STATUSES).exists() or not _checkable(policy):
            continue
        last = runs.order_by("-created_at").first()
        if last is not None and (
            last.created_at >= age_limit or gold_watermark(policy.pk) <= (last.gold_watermark or 0)
        ):
            continue
        if GoldLabel.objects.filter(policy=policy).count() < settings.AL_MIN_GOLD:
            continue
        latest_round = (
            TrainingRun.objects.filter(policy=policy, status=RunStatus.SUCCEEDED).order_by("-created_at").first()
        )
        try:
            started.append(
                label_error_run_start(
                    policy=policy,
                    actor=SYSTEM,
                    params=_params_from_round(latest_round),
                    trigger=LabelErrorTrigger.SCHEDULE,
                )
            )
        except ValidationError as error:
            logger.info("no scheduled label-error check for %s: %s", policy.key, error)
    return started


@dataclass(frozen=True)
class SuspectsSent:
    task_ids: list[int]
    already_queued: list[int]  # gold ids sent for a label-error re-review before (task open, with a lead, or done)
    superseded: list[int]  # gold ids no longer current: corrected since the check, nothing to re-review


def label_error_suspects_send(*, run_id: int, gold_ids: Sequence[int], queue: Queue, actor: Actor) -> SuspectsSent:
    """Open a `reason=label_error` task in `queue` for each chosen suspect of a finished run.

    ValidationError when the run has not succeeded, nothing is chosen, a gold id is not among the
    run's suspects, or the queue is inactive. Idempotent: a gold label already sent for this
    re-review, or corrected since, is skipped and reported, and a send that opens nothing records
    nothing. Locks the run row for the transaction, so two leads sending at once cannot open a
    task twice. Audit: `task.created` per task and one `label_error_run.sent_to_review`; the new
    task ids are added to the run's `task_ids`.
    """
    chosen = list(dict.fromkeys(int(g) for g in gold_ids))
    if not chosen:
        raise ValidationError("Choose at least one suspect to send to re-review.")
    if not queue.is_active:
        raise ValidationError(f"Queue {queue.slug} is not active.")
    with transaction.atomic():
        run = LabelErrorRun.objects.select_for_update().select_related("policy").get(pk=run_id)
        if run.status != RunStatus.SUCCEEDED:
            raise ValidationError(f"Label-error run {run.pk} is {run.status}; only a finished run has suspects.")
        suspects = {int(c["gold_id"]): c for c in run.candidates}
        unknown = [g for g in chosen if g not in suspects]
        if unknown:
            raise ValidationError(f"Not suspects of run {run.pk}: {', '.join(map(str, unknown))}.")
        golds = GoldLabel.objects.filter(pk__in=chosen)
        current = set(gold_current_labels(policy=run.policy).filter(pk__in=chosen).values_list("pk", flat=True))
        pending = set(gold_with_pending_review(golds, reason=TaskReason.LABEL_ERROR).values_list("pk", flat=True))
        todo = [g for g in chosen if g in current and g not in pending]
        task_ids = review_tasks_open(
            golds.filter(pk__in=todo).select_related("policy", "item", "task").order_by("pk"),
            queue=queue,
            reason=TaskReason.LABEL_ERROR,
            actor=actor,
            urgency={g: 2.0 - float(suspects[g]["quality"]) for g in todo},
        )
        sent = SuspectsSent(
            task_ids=task_ids,
            already_queued=[g for g in chosen if g in pending],
            superseded=[g for g in chosen if g not in current],
        )
        if task_ids:
            run.task_ids = [*run.task_ids, *task_ids]
            run.save(update_fields=["task_ids"])
            audit_record(
                actor=actor,
                action="label_error_run.sent_to_review",
                object_type="label_error_run",
                object_id=run.pk,
                after={
                    "policy": run.policy.key,
                    "queue": queue.slug,
                    "gold_ids": todo,
                    "tasks": task_ids,
                    "already_queued": sent.already_queued,
                    "superseded": sent.superseded,
                },
            )
    return sent
