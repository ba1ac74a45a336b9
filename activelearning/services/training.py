"""Training a head on gold and registering it: the part that must survive a SIGKILL.

Order of events in one delivery of the training task:
1. claim the run (attempt counter +1) — `training_run_begin`;
2. load gold, compute features, train (no transaction open);
3. write the artifact atomically to a path unique to this attempt, and re-hash the file on disk;
4. in one transaction: lock the run, create the `ModelVersion` row (only now does the model
   exist for anyone), move the run on; then delete files of other attempts.
A worker killed anywhere before 4 leaves no row (at most an orphan file that the next attempt
removes); the redelivered task (acks_late) trains again and registers. Killed after 4, the
redelivery finds the registered version and only continues the chain.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max

from activelearning.head_inputs import Bags, Features, HeadConfig
from labeling.models import Policy
from reviewapp.audit import SYSTEM, audit_record

from ..models import ACTIVE_RUN_STATUSES, Encoder, ModelVersion, RunStage, TrainingRun
from .datasets import (
    DEV,
    TEST,
    TRAIN,
    GoldSet,
    LabelSpace,
    TrainingDataError,
    check_trainable,
    gold_set,
    gold_watermark,
    label_space,
)
from .features import AnyEncoder, FeatureError, encoder_for_run, item_features
from .pipeline import round_stage
from .registry import model_root, new_artifact_path, remove_unregistered_attempts
from .rounds import training_run_begin, training_run_fail, training_run_note

if TYPE_CHECKING:
    from activelearning.artifacts import ArtifactInfo
    from activelearning.heads import TrainedHead

LARGE_TRAINING_SET = 20_000


def take(features: Features, rows: np.ndarray) -> Features:
    return features.take(rows) if isinstance(features, Bags) else features[rows]


def head_config(params: dict[str, Any], n_train: int) -> HeadConfig:
    """Hyperparameters: bigger batches and shorter patience on big sets (same quality, a fraction of
    the optimizer steps), then the round's explicit overrides."""
    large = n_train >= LARGE_TRAINING_SET
    base = HeadConfig(batch_size=1024 if large else 256, max_epochs=30 if large else 100, patience=3 if large else 5)
    return replace(base, **params.get("head", {}))


def training_run_execute(*, run_id: int) -> ModelVersion | None:
    """Train and register the model of a round; idempotent per run (see the module docstring).

    Returns the registered version, or None when the run is over (finished, failed, or failed now
    for a reason retrying cannot fix — that reason is on the run). Other errors propagate, so
    Celery retries the task.
    """
    run, registered = training_run_begin(run_id=run_id)
    if registered is not None or run is None:
        return registered
    try:
        return _train_and_register(run)
    except (TrainingDataError, FeatureError) as error:
        training_run_fail(run_id=run_id, error=str(error))
        return None


def _train_and_register(run: TrainingRun) -> ModelVersion | None:
    # torch is imported by the worker that trains, not by every process that imports the tasks
    # (a web process does, to enqueue a round).
    from activelearning.artifacts import save_model

    run_id = run.pk
    stopwatch = _Stopwatch(run_id)
    space = label_space(run.policy, run.params.get("positive_label"))
    watermark = gold_watermark(run.policy_id)
    gold = gold_set(
        policy=run.policy, space=space, watermark=watermark, with_embeddings=run.params["encoder"] == Encoder.UPSTREAM
    )
    stopwatch.lap(RunStage.LOADING, f"{len(gold.item_ids)} current gold labels (watermark {watermark})")
    encoder = encoder_for_run(run.params["encoder"], run.params, gold.embeddings)
    features = item_features(
        encoder,
        item_ids=gold.item_ids.tolist(),
        texts=gold.texts,
        embeddings=gold.embeddings,
        progress=stopwatch.embedding_progress,
    )
    gold = gold.subset(features.kept)
    check_trainable(gold, space, minimum=_min_gold())
    stopwatch.lap(
        RunStage.EMBEDDING, f"features for {len(gold.item_ids)} items by {encoder.encoder_id}; split {gold.counts()}"
    )
    head = _train(run, gold, features.features, space)
    stopwatch.lap(RunStage.TRAINING, f"trained {head.history.epochs_run} epochs (best {head.history.best_epoch})")
    relative = new_artifact_path(run)
    info = save_model(
        model_root() / relative, head, encoder=encoder.config(), metadata=_artifact_metadata(run, gold, space)
    )
    version = model_version_register(
        run_id=run_id, relative_path=relative, info=info, encoder=encoder, head=head, gold=gold, space=space
    )
    stopwatch.lap(RunStage.REGISTERING, f"registered {version}" if version else "another attempt registered first")
    return version or ModelVersion.objects.filter(training_run_id=run_id).first()


def _min_gold() -> int:
    # The one minimum: `rounds.round_gold_shortfall` refuses to start a round below it.
    return settings.AL_MIN_GOLD


def _train(run: TrainingRun, gold: GoldSet, features: Features, space: LabelSpace) -> TrainedHead:
    from activelearning.heads import train_head  # torch: see _train_and_register

    train_rows, dev_rows = gold.rows(TRAIN), gold.rows(DEV)
    config = head_config(run.params, len(train_rows))
    training_run_note(
        run_id=run.pk,
        message=f"training on {len(train_rows)}, early stopping on {len(dev_rows)}",
        stage=RunStage.TRAINING,
    )
    return train_head(
        take(features, train_rows),
        gold.y_head[train_rows],
        take(features, dev_rows),
        gold.y_head[dev_rows],
        labels=space.head_labels,
        config=config,
    )


def _artifact_metadata(run: TrainingRun, gold: GoldSet, space: LabelSpace) -> dict[str, Any]:
    return {
        "policy": run.policy.key,
        "training_run": run.pk,
        "gold_watermark": gold.watermark,
        "training_set_sha256": gold.sha256,
        "task": space.task,
        "classes": list(space.classes),
        "positive_label": space.positive_label,
        "split": gold.definition.as_dict(),
    }


def model_version_register(
    *,
    run_id: int,
    relative_path: str,
    info: ArtifactInfo,
    encoder: AnyEncoder,
    head: TrainedHead,
    gold: GoldSet,
    space: LabelSpace,
) -> ModelVersion | None:
    """Create the ModelVersion row for an artifact already on disk, in one transaction.

    Locks the run row (then the policy row, to number versions without gaps or clashes). Returns
    None, and deletes this attempt's file, when another attempt registered first or the run is
    no longer active. Raises if the file on disk does not hash to `info.sha256`.
    """
    from activelearning.artifacts import file_sha256  # torch: see _train_and_register

    path = model_root() / relative_path
    if not path.is_file() or file_sha256(path) != info.sha256:
        raise OSError(f"artifact {path} is missing or does not match sha256 {info.sha256}")
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().select_related("policy").get(pk=run_id)
        if run.status not in ACTIVE_RUN_STATUSES or ModelVersion.objects.filter(training_run=run).exists():
            transaction.on_commit(lambda: Path(path).unlink(missing_ok=True))
            return None
        Policy.objects.select_for_update().filter(pk=run.policy_id).first()
        number = (ModelVersion.objects.filter(policy_id=run.policy_id).aggregate(top=Max("number"))["top"] or 0) + 1
        version = ModelVersion.objects.create(
            policy=run.policy,
            training_run=run,
            number=number,
            artifact_path=relative_path,
            artifact_sha256=info.sha256,
            artifact_bytes=info.size,
            encoder=run.params["encoder"],
            encoder_id=encoder.encoder_id,
            encoder_config=encoder.config(),
            hyperparameters=asdict(head.config),
            task=space.task,
            head_labels=list(space.head_labels),
            classes=list(space.classes),
            positive_label=space.positive_label,
            gold_watermark=gold.watermark,
            training_set_sha256=gold.sha256,
            snapshot_id=run.snapshot_id,
            **gold.definition.model_fields(),
            n_train=len(gold.rows(TRAIN)),
            n_dev=len(gold.rows(DEV)),
            training_history=asdict(head.history),
        )
        _close_training(run, gold)
        audit_record(
            actor=SYSTEM,
            action="model.registered",
            object_type="model_version",
            object_id=version.pk,
            after={
                "policy": run.policy.key,
                "number": number,
                "sha256": info.sha256,
                "training_run": run.pk,
                "gold_watermark": gold.watermark,
                "split": gold.definition.as_dict(),
            },
        )
        transaction.on_commit(lambda: remove_unregistered_attempts(run, keep=relative_path))
    return version


def _close_training(run: TrainingRun, gold: GoldSet) -> None:
    run.gold_watermark = gold.watermark
    run.training_set_sha256 = gold.sha256
    run.counts = {**gold.counts(), "gold": len(gold.item_ids), "test_held_out": len(gold.rows(TEST)), **gold.skipped}
    run.save(update_fields=["gold_watermark", "training_set_sha256", "counts"])


class _Stopwatch:
    """Times stages of a run and writes one log line per stage."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self.started = time.perf_counter()

    def lap(self, stage: str, message: str) -> None:
        now = time.perf_counter()
        training_run_note(run_id=self.run_id, message=message, timing=(stage, now - self.started))
        self.started = now

    def embedding_progress(self, fraction: float, message: str) -> None:
        low, high = round_stage(RunStage.EMBEDDING).progress, round_stage(RunStage.TRAINING).progress
        training_run_note(
            run_id=self.run_id,
            message=message,
            stage=RunStage.EMBEDDING,
            progress=low + (high - low) * min(fraction, 1.0),
        )
