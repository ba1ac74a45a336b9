"""Label-error checks of a policy's gold on out-of-fold probabilities (`LabelErrorRun`).

A check runs in two steps: the active-learning head, with the encoder and head settings a round
would use, is trained k times on the policy's current gold, each time leaving one fold out and
scoring it (`activelearning.out_of_fold`); confident learning
(`labeling.services.label_errors.label_errors_find`) then ranks the gold labels those
probabilities contradict, and optionally sends the top ones to reviewers. The run records what
produced the probabilities: encoder, head settings, k, seed, the gold watermark and its hash,
the fold-assignment hash, each fold's fit-set hash, and every item's fold and probabilities
(`OutOfFoldScore`).

`label_error_run_start` creates the run (and enqueues the `find_label_errors` task on commit);
`label_error_run_execute` does the heavy part, called by that task or in-process by the
management command. Both paths run the same code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from activelearning.head_inputs import Features
from activelearning.out_of_fold import (
    MAX_FOLDS,
    MIN_FOLDS,
    FoldResult,
    OutOfFoldError,
    fold_plan,
    out_of_fold_probabilities,
)
from labeling.models import Policy
from labeling.services.label_errors import LabelIssue, label_errors_find, label_errors_queue
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.content_keys import content_groups
from reviewapp.models import Queue

from ..models import (
    ACTIVE_RUN_STATUSES,
    Encoder,
    LabelErrorRun,
    LabelErrorTrigger,
    OutOfFoldScore,
    RunStatus,
    TrainingRun,
)
from .datasets import GoldSet, LabelSpace, TrainingDataError, gold_set, gold_watermark, label_space
from .features import AnyEncoder, FeatureError, encoder_for_run, item_features
from .pipeline import enqueue_after_commit, label_error_run_task
from .rounds import check_round_params
from .training import head_config

DEFAULT_FOLDS = 5
MAX_TOP_K = 10_000
_SHARED_WITH_ROUNDS = ("encoder", "num_buckets", "positive_label", "head")


def oof_group_keys(texts: Sequence[str]) -> list[str]:
    """One key per text (gold rows in item order); equal keys share a fold, so a copy or a near
    duplicate of a text cannot vouch for its label (`reviewapp.content_keys`: the same grouping
    the held-out splits use)."""
    return content_groups(texts).keys


def check_label_error_params(*, policy: Policy, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validated parameters with defaults; ValidationError names each bad field.

    Encoder, head settings, n-gram buckets and positive label are checked as a round's are.
    """
    errors: dict[str, str] = {}
    try:
        shared = check_round_params(
            policy=policy, raw={**{key: raw.get(key) for key in _SHARED_WITH_ROUNDS}, "pipeline": "train"}
        )
    except ValidationError as error:
        errors.update({field: "; ".join(messages) for field, messages in error.message_dict.items()})
        shared = {}
    params = {key: shared[key] for key in _SHARED_WITH_ROUNDS if key in shared}
    params["k"] = _whole(raw.get("k", DEFAULT_FOLDS), MIN_FOLDS, MAX_FOLDS, "k", errors)
    params["seed"] = _whole(raw.get("seed", 0), 0, 2**31 - 1, "seed", errors)
    params["top_k"] = _whole(raw.get("top_k", 50), 1, MAX_TOP_K, "top_k", errors)
    if raw.get("queue_id") is not None:
        params["queue_id"] = _whole(raw["queue_id"], 1, 2**62, "queue_id", errors)
        if "queue_id" not in errors and not Queue.objects.filter(pk=params["queue_id"], is_active=True).exists():
            errors["queue_id"] = "no active queue with this id"
    if errors:
        raise ValidationError(errors)
    return params


def _whole(value: Any, low: int, high: int, name: str, errors: dict[str, str]) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        errors[name] = "must be a whole number"
        return low
    if not low <= number <= high:
        errors[name] = f"must be between {low} and {high}"
    return number


def label_error_run_start(
    *,
    policy: Policy,
    actor: Actor,
    params: Mapping[str, Any],
    user: User | None = None,
    enqueue: bool = True,
    trigger: str = LabelErrorTrigger.MANUAL,
    training_run: TrainingRun | None = None,
) -> LabelErrorRun:
    """Create a queued run; with `enqueue`, send the `find_label_errors` task once this commits.

    Without `enqueue` the caller runs `label_error_run_execute` itself (the management command).
    `training_run`: the round this check follows; IntegrityError if that round has one already
    (`label_error_run_after_round` relies on it).
    """
    checked = check_label_error_params(policy=policy, raw=params)
    with transaction.atomic():
        run = LabelErrorRun.objects.create(
            policy=policy,
            params=checked,
            encoder=checked["encoder"],
            k=checked["k"],
            seed=checked["seed"],
            trigger=trigger,
            training_run=training_run,
            created_by=user,
            created_by_label=actor.label,
        )
        audit_record(
            actor=actor,
            action="label_error_run.requested",
            object_type="label_error_run",
            object_id=run.pk,
            after={
                "policy": policy.key,
                "params": checked,
                "in": "worker" if enqueue else "process",
                "trigger": trigger,
                "training_run": training_run.pk if training_run else None,
            },
        )
        if enqueue:
            enqueue_after_commit(label_error_run_task(), run.pk)
    return run


def label_error_run_execute(*, run_id: int) -> LabelErrorRun | None:
    """Score the policy's gold out of fold, rank likely label errors, record it all; idempotent.

    Returns the finished run, or None when the run was over before this call (a redelivery of a
    finished task). Bad data (too little gold, one class, no features, a fold without two classes)
    fails the run with the reason; other errors propagate so Celery retries.
    """
    run = _begin(run_id)
    if run is None:
        return None
    try:
        return _execute(run)
    except (TrainingDataError, FeatureError, OutOfFoldError, ValidationError) as error:
        message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        label_error_run_fail(run_id=run_id, error=message)
        return LabelErrorRun.objects.get(pk=run_id)


def _begin(run_id: int) -> LabelErrorRun | None:
    with transaction.atomic():
        run = LabelErrorRun.objects.select_for_update().select_related("policy").filter(pk=run_id).first()
        if run is None or run.status not in ACTIVE_RUN_STATUSES:
            return None
        run.status = RunStatus.RUNNING
        run.attempts += 1
        run.started_at = run.started_at or timezone.now()
        run.save(update_fields=["status", "attempts", "started_at"])
    return run


def _execute(run: LabelErrorRun) -> LabelErrorRun | None:
    timings: dict[str, float] = {}
    space = label_space(run.policy, run.params.get("positive_label"))
    if space.task == "multilabel":
        raise TrainingDataError(f"policy {run.policy.key} allows several labels; label-error checks need one per item")
    gold, features, encoder, loaded = _gold_features(run, space, timings)
    clock = time.perf_counter()
    plan = fold_plan(
        item_ids=gold.item_ids.tolist(),
        groups=oof_group_keys(gold.texts),
        strata=gold.y_eval.tolist(),
        k=run.k,
        seed=run.seed,
        dev_fraction=settings.AL_DEV_FRACTION,
    )
    config = replace(head_config(run.params, int(len(gold.item_ids) * (run.k - 1) / run.k)), seed=run.seed)
    head_probs, folds = out_of_fold_probabilities(
        features, gold.y_head, gold.y_eval, plan, item_ids=gold.item_ids, labels=space.head_labels, config=config
    )
    timings["folds"] = time.perf_counter() - clock
    probabilities = _by_item(space, gold.item_ids, head_probs)
    facts = {
        "encoder_id": encoder.encoder_id,
        "encoder_config": encoder.config(),
        "hyperparameters": asdict(config),
        "gold_watermark": gold.watermark,
        "training_set_sha256": gold.sha256,
        "fold_assignment_sha256": plan.sha256,
        "folds": [asdict(fold) for fold in folds],
        "counts": {
            "gold": loaded,
            "scored": len(gold.item_ids),
            "groups": plan.n_groups,
            "per_class": _per_class(space, gold.y_eval),
            **gold.skipped,
        },
    }
    rows = [
        OutOfFoldScore(
            run_id=run.pk,
            item_id=int(item),
            gold_label_id=int(gold_id),
            fold=int(fold),
            probabilities=probabilities[int(item)],
        )
        for item, gold_id, fold in zip(gold.item_ids, gold.gold_ids, plan.folds, strict=True)
    ]
    return _record(run.pk, probabilities, rows, facts, timings, folds)


def _gold_features(
    run: LabelErrorRun, space: LabelSpace, timings: dict[str, float]
) -> tuple[GoldSet, Features, AnyEncoder, int]:
    """The policy's current gold the encoder can read, its features, the encoder, and how many were loaded."""
    clock = time.perf_counter()
    gold = gold_set(
        policy=run.policy,
        space=space,
        watermark=gold_watermark(run.policy_id),
        with_embeddings=run.params["encoder"] == Encoder.UPSTREAM,
    )
    timings["loading"], clock = time.perf_counter() - clock, time.perf_counter()
    encoder = encoder_for_run(run.params["encoder"], run.params, gold.embeddings)
    features = item_features(encoder, item_ids=gold.item_ids.tolist(), texts=gold.texts, embeddings=gold.embeddings)
    loaded = len(gold.item_ids)
    gold = gold.subset(features.kept)
    if len(gold.item_ids) < settings.AL_MIN_GOLD:
        raise TrainingDataError(
            f"{len(gold.item_ids)} usable gold labels; a check needs at least {settings.AL_MIN_GOLD}"
        )
    timings["features"] = time.perf_counter() - clock
    return gold, features.features, encoder, loaded


def _by_item(space: LabelSpace, item_ids: np.ndarray, head_probs: np.ndarray) -> dict[int, dict[str, float]]:
    """item id → {schema label: probability}: the binary head's sigmoid split into both labels,
    the multiclass heads' sigmoids normalised over the labels."""
    evaluated = space.eval_probs(head_probs)
    if space.task == "binary":
        negative, positive = space.classes
        return {
            int(i): {positive: float(p), negative: 1.0 - float(p)} for i, p in zip(item_ids, evaluated, strict=True)
        }
    return {
        int(i): {label: float(p) for label, p in zip(space.classes, row, strict=True)}
        for i, row in zip(item_ids, evaluated, strict=True)
    }


def _per_class(space: LabelSpace, strata: np.ndarray) -> dict[str, int]:
    return {label: int((strata == index).sum()) for index, label in enumerate(space.classes)}


def _record(
    run_id: int,
    probabilities: dict[int, dict[str, float]],
    rows: list[OutOfFoldScore],
    facts: dict[str, Any],
    timings: dict[str, float],
    folds: list[FoldResult],
) -> LabelErrorRun | None:
    """Store the scores, rank (and queue) the suspects, finish the run: one transaction.

    Locks the run row; a run failed or cancelled meanwhile records nothing. A redelivered task
    that ran before replaces its scores (the same ones: the run is deterministic).
    """
    with transaction.atomic():
        run = LabelErrorRun.objects.select_for_update().select_related("policy").get(pk=run_id)
        if run.status not in ACTIVE_RUN_STATUSES:
            return None
        OutOfFoldScore.objects.filter(run=run).delete()
        OutOfFoldScore.objects.bulk_create(rows, batch_size=2000)
        clock = time.perf_counter()
        candidates, task_ids = _suspects(run, probabilities)
        timings["confident_learning"] = time.perf_counter() - clock
        for field, value in facts.items():
            setattr(run, field, value)
        run.candidates_found = len(candidates)
        run.candidates = [asdict(issue) for issue in candidates[: run.params["top_k"]]]
        run.task_ids = task_ids
        run.timings = {stage: round(seconds, 3) for stage, seconds in timings.items()}
        run.status, run.finished_at = RunStatus.SUCCEEDED, timezone.now()
        run.save(
            update_fields=[*facts, "candidates_found", "candidates", "task_ids", "timings", "status", "finished_at"]
        )
        audit_record(
            actor=SYSTEM,
            action="label_error_run.succeeded",
            object_type="label_error_run",
            object_id=run.pk,
            after={
                "policy": run.policy.key,
                "scored": len(rows),
                "k": run.k,
                "fold_assignment_sha256": run.fold_assignment_sha256,
                "candidates": len(candidates),
                "tasks": len(task_ids),
                "fold_fit_sha256": [fold.fit_sha256 for fold in folds],
            },
        )
    return run


def _suspects(run: LabelErrorRun, probabilities: dict[int, dict[str, float]]) -> tuple[list[LabelIssue], list[int]]:
    queue_id = run.params.get("queue_id")
    if queue_id is None:
        return label_errors_find(policy=run.policy, probabilities=probabilities), []
    queued = label_errors_queue(
        policy=run.policy,
        queue=Queue.objects.get(pk=queue_id),
        top_k=run.params["top_k"],
        actor=SYSTEM,
        probabilities=probabilities,
        provenance={
            "source": "out_of_fold",
            "label_error_run": run.pk,
            "encoder": run.encoder,
            "k": run.k,
            "seed": run.seed,
        },
    )
    return queued.candidates, queued.task_ids


def label_error_run_fail(*, run_id: int, error: str, actor: Actor = SYSTEM) -> bool:
    """Mark an active run failed with the reason people will read; False if it was not active."""
    with transaction.atomic():
        updated = LabelErrorRun.objects.filter(pk=run_id, status__in=ACTIVE_RUN_STATUSES).update(
            status=RunStatus.FAILED, error=error[:4000], finished_at=timezone.now()
        )
        if updated:
            audit_record(
                actor=actor,
                action="label_error_run.failed",
                object_type="label_error_run",
                object_id=run_id,
                after={"status": RunStatus.FAILED, "error": error[:500]},
            )
    return bool(updated)
