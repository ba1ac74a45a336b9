"""The round pipeline, declared once: its stages in order, where the progress bar stands when each
starts, and the Celery task that carries a round on from it.

retrain (loading → embedding → training → registering) → evaluate → promote → score_pool
(→ score_chunk × N) → select_batch → propose_thresholds → done. Every stage task takes the run
id alone and reads everything else from the run row, so any stage can be (re)sent knowing only
the run: by the stage before it (`round_continue`) and by `rounds_resume_stalled`.

Tasks are enqueued as objects, after commit, through `enqueue_after_commit` only. The tasks
module imports these services, so this module reaches the task objects through `_tasks()` at
call time: the one services → tasks import of the app (the documented enqueue exception).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

from django.db import transaction

from ..models import RunStage

if TYPE_CHECKING:
    from celery import Task


@dataclass(frozen=True)
class Stage:
    name: str  # a RunStage value, stored on TrainingRun.stage
    progress: float  # where the round's progress bar stands when the stage starts
    task: Task | None  # the task that carries the round on from this stage (None: the round is over)


def _tasks() -> ModuleType:
    from activelearning import tasks  # tasks import the services: resolved at call time, here only

    return tasks


@cache
def round_stages() -> tuple[Stage, ...]:
    """The stages of a round in order (a model trained and registered all happens in `retrain`)."""
    tasks = _tasks()
    return (
        Stage(RunStage.QUEUED, 0.0, tasks.retrain),
        Stage(RunStage.LOADING, 0.02, tasks.retrain),
        Stage(RunStage.EMBEDDING, 0.05, tasks.retrain),
        Stage(RunStage.TRAINING, 0.25, tasks.retrain),
        Stage(RunStage.REGISTERING, 0.55, tasks.retrain),
        Stage(RunStage.EVALUATING, 0.6, tasks.evaluate),
        Stage(RunStage.PROMOTING, 0.68, tasks.promote),
        Stage(RunStage.SCORING, 0.72, tasks.score_pool),  # score_chunk moves the bar on per chunk
        Stage(RunStage.SELECTING, 0.92, tasks.select_batch),
        Stage(RunStage.THRESHOLDS, 0.96, tasks.propose_thresholds),
        Stage(RunStage.DONE, 1.0, None),
    )


def round_stage(name: str) -> Stage:
    """The stage called `name` (KeyError for a name that is not a stage)."""
    return {stage.name: stage for stage in round_stages()}[name]


def score_chunk_task() -> Task:
    """The task scoring one chunk of the pool (a fan-out inside the scoring stage, not a stage)."""
    return _tasks().score_chunk


def label_error_run_task() -> Task:
    """The task that runs an out-of-fold label-error check (`LabelErrorRun`); not a round stage."""
    return _tasks().find_label_errors


def deployed_score_task() -> Task:
    """The task scoring new content items with the deployed (live and shadow) versions; not a stage."""
    return _tasks().score_deployed


def enqueue_after_commit(task: Task, *ids: int) -> None:
    """Send `task(*ids)` once the current transaction commits (at once outside a transaction).

    Nothing is sent for work that rolls back, and a worker never reads rows it cannot see yet.
    """
    transaction.on_commit(lambda: task.delay(*ids))
