"""Rounds (`TrainingRun`): start, progress notes, finish, fail, and going on to the next stage.

A round runs as a chain of Celery tasks, each idempotent and each enqueuing the next on commit;
the stages, their progress and their tasks are declared once in `pipeline.py`. With
`pipeline="train"` the round ends once the model is registered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone

from activelearning.encoders import MiniLMEncoder
from activelearning.head_inputs import HeadConfig
from activelearning.strategies import STRATEGIES
from labeling.models import Policy
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.errors import Conflict
from reviewapp.models import Queue, QueueKind, RoutingRule

from ..models import ACTIVE_RUN_STATUSES, Encoder, ModelVersion, RunStage, RunStatus, RunTrigger, TrainingRun
from .pipeline import enqueue_after_commit, round_stage, round_stages

PIPELINES = ("round", "train")
_HEAD_FIELDS = {f.name for f in fields(HeadConfig)}


class RoundAlreadyActive(Conflict):
    """The policy already has a queued or running round (at most one at a time)."""

    def __init__(self, run: TrainingRun) -> None:
        super().__init__(f"round {run.pk} of {run.policy.key} is still {run.status}")
        self.run = run


class InvalidRound(ValidationError):
    """Round parameters that fail validation; `message_dict` names each bad field."""


def review_queue_for(policy: Policy, queue_id: int | None = None) -> Queue | None:
    """The queue active-learning tasks go to: the one asked for, else the policy's default review queue.

    The default is the queue of the policy's `*` routing rule; without one (a policy whose items
    came from a dataset import, say), the active review queue holding most of the policy's tasks.
    """
    if queue_id is not None:
        return Queue.objects.filter(pk=queue_id, is_active=True).first()
    rule = RoutingRule.objects.filter(policy=policy, model_name=RoutingRule.ANY_MODEL).select_related("queue").first()
    if rule is not None:
        return rule.queue
    return (
        Queue.objects.filter(is_active=True, kind=QueueKind.REVIEW, tasks__policy=policy)
        .annotate(n_tasks=Count("tasks"))
        .order_by("-n_tasks", "pk")
        .first()
    )


def round_gold_shortfall(*, policy: Policy) -> str | None:
    """Why the policy's current gold is too little for a round to train and be evaluated, else None.

    The same minimum training enforces (`AL_MIN_GOLD` usable items, `datasets.check_trainable`),
    and gold of at least two classes; the split-level checks (two classes in train, held-out gold)
    are left to training, which reports them on the round.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(DISTINCT labels::text) FROM (
                SELECT DISTINCT ON (item_id) item_id, labels FROM labeling_goldlabel
                WHERE policy_id = %s ORDER BY item_id, version DESC) g
            """,
            [policy.pk],
        )
        items, classes = cursor.fetchone()
    if items < settings.AL_MIN_GOLD:
        return (
            f"{policy.name} has gold labels on {items} item{'' if items == 1 else 's'}; "
            f"a round needs at least {settings.AL_MIN_GOLD}"
        )
    if classes < 2:
        return f"every gold label of {policy.name} says the same; a round needs gold of at least two classes"
    return None


def check_round_params(*, policy: Policy, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validated round parameters with defaults filled in; ValidationError names each bad field."""
    errors: dict[str, str] = {}
    params: dict[str, Any] = {
        "encoder": raw.get("encoder") or default_encoder(),
        "strategy": raw.get("strategy") or "entropy",
        "balanced": _bool(raw.get("balanced", False)),
        "pipeline": raw.get("pipeline") or "round",
    }
    if params["encoder"] not in Encoder.values:
        errors["encoder"] = f"choose one of {', '.join(Encoder.values)}"
    if params["strategy"] not in STRATEGIES:
        errors["strategy"] = f"choose one of {', '.join(STRATEGIES)}"
    if params["pipeline"] not in PIPELINES:
        errors["pipeline"] = f"choose one of {', '.join(PIPELINES)}"
    params["budget"] = _int(
        raw.get("budget") or settings.AL_DEFAULT_BUDGET, 1, settings.AL_MAX_BUDGET, "budget", errors
    )
    if raw.get("queue_id") not in (None, ""):
        params["queue_id"] = _int(raw["queue_id"], 1, 2**62, "queue_id", errors)
    if raw.get("n_bootstrap") not in (None, ""):
        params["n_bootstrap"] = _int(raw["n_bootstrap"], 0, 5000, "n_bootstrap", errors)
    if raw.get("num_buckets") not in (None, ""):
        params["num_buckets"] = _int(raw["num_buckets"], 2**8, 2**22, "num_buckets", errors)
    if raw.get("positive_label"):
        params["positive_label"] = str(raw["positive_label"])
        version = policy.current_version()
        if version is None or params["positive_label"] not in version.label_values:
            errors["positive_label"] = "not a label of the policy's current schema"
    head = raw.get("head") or {}
    if not isinstance(head, dict) or not set(head) <= _HEAD_FIELDS:
        errors["head"] = f"an object with keys among {', '.join(sorted(_HEAD_FIELDS))}"
    elif not all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in head.values()):
        errors["head"] = "values must be numbers (class_weighting: a string)"
    else:
        params["head"] = dict(head)
    if not errors and params["pipeline"] == "round" and review_queue_for(policy, params.get("queue_id")) is None:
        errors["queue_id"] = (
            f"{policy.name} has no default review queue (no '*' routing rule, and no active review queue "
            "holds its tasks): choose a queue or add a '*' routing rule for the policy"
        )
    if errors:
        raise InvalidRound(errors)
    return params


def default_encoder() -> str:
    if settings.AL_DEFAULT_ENCODER != "auto":
        return settings.AL_DEFAULT_ENCODER
    return Encoder.MINILM if MiniLMEncoder.available() else Encoder.HASHED


def _bool(value: Any) -> bool:
    return value in (True, "1", "true", "on", "yes")


def _int(value: Any, low: int, high: int, name: str, errors: dict[str, str]) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        errors[name] = "must be a whole number"
        return low
    if not low <= number <= high:
        errors[name] = f"must be between {low} and {high}"
    return number


def training_run_start(
    *,
    policy: Policy,
    actor: Actor,
    params: Mapping[str, Any],
    trigger: str = RunTrigger.MANUAL,
    user: User | None = None,
) -> TrainingRun:
    """Create a queued round and enqueue its training on commit.

    Raises RoundAlreadyActive when the policy has a queued or running round: the partial unique
    index `trainingrun_one_active_per_policy` decides, so two leads clicking at once get one round.
    """
    checked = check_round_params(policy=policy, raw=params)
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                policy=policy, params=checked, trigger=trigger, requested_by=user, requested_by_label=actor.label
            )
            audit_record(
                actor=actor,
                action="training_run.requested",
                object_type="training_run",
                object_id=run.pk,
                after={"policy": policy.key, "trigger": trigger, "params": checked},
            )
            enqueue_after_commit(round_stages()[0].task, run.pk)
    except IntegrityError:
        active = TrainingRun.objects.filter(policy=policy, status__in=ACTIVE_RUN_STATUSES).first()
        if active is None:
            raise
        raise RoundAlreadyActive(active) from None
    return run


def training_run_note(
    *,
    run_id: int,
    message: str = "",
    stage: str | None = None,
    progress: float | None = None,
    timing: tuple[str, float] | None = None,
) -> None:
    """Append a log line and move stage/progress forward, in one UPDATE (no read-modify-write).

    Autocommits when called outside a transaction, so the live page sees it at once.
    """
    if progress is None and stage is not None:
        progress = round_stage(stage).progress
    line = f"{timezone.now():%H:%M:%S} {message}\n" if message else ""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE activelearning_trainingrun
               SET log = log || %s,
                   stage = coalesce(%s, stage),
                   progress = greatest(progress, least(coalesce(%s, 0), 1)),
                   timings = timings || %s::jsonb,
                   updated_at = statement_timestamp()
             WHERE id = %s
            """,
            [line, stage, progress, _timing_json(timing), run_id],
        )


def _timing_json(timing: tuple[str, float] | None) -> str:
    return json.dumps({timing[0]: round(timing[1], 3)} if timing else {})


def training_run_begin(*, run_id: int) -> tuple[TrainingRun | None, ModelVersion | None]:
    """Claim a delivery of the training task: (run to train, None), or (None, version already registered).

    Locks the run row briefly. A finished or failed run gives (None, None): nothing to do.
    A registered version means an earlier delivery trained it; the chain goes on from there.
    """
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().select_related("policy").get(pk=run_id)
        version = ModelVersion.objects.filter(training_run=run).first()
        if version is not None:
            return None, version
        if run.status not in ACTIVE_RUN_STATUSES:
            return None, None
        run.status = RunStatus.RUNNING
        run.attempts += 1
        run.started_at = run.started_at or timezone.now()
        run.save(update_fields=["status", "attempts", "started_at"])
    note = "training started" if run.attempts == 1 else f"training restarted (delivery {run.attempts})"
    training_run_note(run_id=run_id, message=note, stage=RunStage.LOADING)
    return run, None


def training_run_finish(*, run_id: int, message: str = "round finished") -> None:
    """Mark an active round succeeded (idempotent)."""
    with transaction.atomic():
        updated = TrainingRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES).update(
            status=RunStatus.SUCCEEDED, stage=RunStage.DONE, progress=1.0, finished_at=timezone.now()
        )
        if updated:
            audit_record(
                actor=SYSTEM,
                action="training_run.succeeded",
                object_type="training_run",
                object_id=run_id,
                after={"status": RunStatus.SUCCEEDED},
            )
    if updated:
        training_run_note(run_id=run_id, message=message)


def training_run_fail(*, run_id: int, error: str, actor: Actor = SYSTEM) -> bool:
    """Mark an active round failed with the reason people will read; False if it was not active.

    Also how a lead cancels a round: steps still running find the round inactive and stop there
    (a model trained meanwhile is not registered).
    """
    with transaction.atomic():
        updated = TrainingRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES).update(
            status=RunStatus.FAILED, error=error[:4000], finished_at=timezone.now()
        )
        if updated:
            audit_record(
                actor=actor,
                action="training_run.failed",
                object_type="training_run",
                object_id=run_id,
                after={"status": RunStatus.FAILED, "error": error[:500]},
            )
    if updated:
        training_run_note(run_id=run_id, message=f"failed: {error[:500]}")
    return bool(updated)


def round_continue(*, run_id: int, stage: str, message: str = "") -> None:
    """Note that the round reached `stage` and enqueue the stage's task on commit.

    A no-op when the run is over (failed or cancelled meanwhile): the chain stops there.
    """
    run = TrainingRun.objects.filter(pk=run_id).only("status").first()
    if run is None or run.status not in ACTIVE_RUN_STATUSES:
        return
    training_run_note(run_id=run_id, message=message, stage=stage)
    enqueue_after_commit(round_stage(stage).task, run_id)
