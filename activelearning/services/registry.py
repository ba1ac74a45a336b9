"""Model artifacts on disk and a small per-process cache of loaded models.

Artifacts live under `REVIEWAPP_MODEL_DIR/<database name>/<policy key>/`: the database name keeps
the files of a test, bench or second deployment sharing the volume apart. Every worker that loads
models must see the same folder (a shared volume when workers run on several machines).
`ModelVersion.artifact_path` is relative to `model_root()`, so the volume can move.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import connection

from activelearning.head_inputs import Features

from ..models import ModelVersion, TrainingRun

if TYPE_CHECKING:
    from activelearning.artifacts import LoadedModel

_LOADED: OrderedDict[str, LoadedModel] = OrderedDict()
_CACHE_SIZE = 3  # champion, challenger and one spare: a hashed-n-gram head is ~70 MB


def model_root() -> Path:
    return Path(settings.MODEL_DIR) / connection.settings_dict["NAME"]


def new_artifact_path(run: TrainingRun) -> str:
    """A fresh relative path for one training attempt of `run`.

    Unique per attempt, so a redelivered task never overwrites the file another attempt of the
    same run may be registering at that moment; unregistered attempts are removed afterwards.
    """
    return f"{run.policy.key}/run-{run.pk}-{uuid.uuid4().hex[:12]}.pt"


def remove_unregistered_attempts(run: TrainingRun, keep: str) -> int:
    """Delete artifact files of `run`'s other attempts (killed or duplicate); returns how many."""
    removed = 0
    for path in (model_root() / run.policy.key).glob(f"run-{run.pk}-*.pt"):
        if path.name != Path(keep).name:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def loaded_model(version: ModelVersion) -> LoadedModel:
    """The version's artifact, loaded once per process and checked against its sha256."""
    # torch is imported by the first load, not at module import: web processes import this module
    # (through threshold approval) and never load a model.
    from activelearning.artifacts import load_model

    model = _LOADED.get(version.artifact_sha256)
    if model is None:
        model = load_model(model_root() / version.artifact_path, expected_sha256=version.artifact_sha256)
        _LOADED[version.artifact_sha256] = model
        while len(_LOADED) > _CACHE_SIZE:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(version.artifact_sha256)
    return model


def head_probs(version: ModelVersion, features: Features) -> np.ndarray:
    """Calibrated head probabilities (n, L) of `version` for features from its encoder."""
    return loaded_model(version).head.predict_proba(features)
