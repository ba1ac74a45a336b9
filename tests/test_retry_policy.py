"""Every Celery task's acknowledgement, retry and time-limit options, pinned task by task.

The policies live in `reviewapp/retry.py`; this table says what each task must end up with, in
plain values, so moving a task to another policy (or editing a policy) is a visible decision.
"""

from __future__ import annotations

from typing import Any

import pytest
from celery import current_app
from django.conf import settings

from labeling.labelstudio.client import Unavailable

OPTIONS = ("acks_late", "autoretry_for", "retry_backoff", "retry_backoff_max", "retry_jitter", "max_retries")

# Celery's defaults where a policy sets nothing: no automatic retry, 3 retries for `self.retry`.
LATE_ACK = {
    "acks_late": True,
    "autoretry_for": None,
    "retry_backoff": None,
    "retry_backoff_max": None,
    "retry_jitter": None,
    "max_retries": 3,
}
IDEMPOTENT = {
    **LATE_ACK,
    "autoretry_for": (Exception,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
}
HEAVY = {**IDEMPOTENT, "max_retries": 3}
REMOTE = {
    "acks_late": True,
    "autoretry_for": (Unavailable,),
    "retry_backoff": 2,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 10,
}
EXPORT, TRAIN = settings.EXPORT_JOB_TIME_LIMIT, settings.AL_TRAIN_TIME_LIMIT

# task name → (expected options, time_limit, soft_time_limit)
EXPECTED: dict[str, tuple[dict[str, Any], int, int]] = {
    "reviewapp.sweep_expired_leases": (IDEMPOTENT, 120, 100),
    "reviewapp.ingest_fan_out": (IDEMPOTENT, 120, 100),
    "reviewapp.ingest_apply_chunk": (IDEMPOTENT, 300, 270),
    "reviewapp.ingest_resend_stalled": (LATE_ACK, 120, 100),
    "labeling.resolve_task": (IDEMPOTENT, 60, 50),
    "labeling.resolve_due_tasks": (IDEMPOTENT, 300, 280),
    "labeling.honeypots_top_up": (IDEMPOTENT, 300, 280),
    "labeling.refresh_reliability": (IDEMPOTENT, 900, 840),
    "exports.build_snapshot": (LATE_ACK, EXPORT, EXPORT - 60),
    "exports.export_file": (LATE_ACK, EXPORT, EXPORT - 60),
    "exports.deliver_webhook": (LATE_ACK, 60, 50),
    "exports.deliver_webhooks_fan_out": (IDEMPOTENT, 120, 100),
    "exports.sweep": (LATE_ACK, 120, 100),
    "labelstudio.pull": (REMOTE, 900, 840),
    "labelstudio.push": (REMOTE, 900, 840),
    "labelstudio.sync_project": (REMOTE, 900, 840),
    "labelstudio.pull_all": (LATE_ACK, 60, 50),
    "activelearning.retrain": (HEAVY, TRAIN, TRAIN - 60),
    "activelearning.evaluate": (HEAVY, 1800, 1740),
    "activelearning.promote": (HEAVY, 1800, 1740),
    "activelearning.score_pool": (HEAVY, 600, 570),
    "activelearning.score_chunk": (HEAVY, 1800, 1740),
    "activelearning.score_deployed": (HEAVY, 600, 570),
    "activelearning.score_deployed_sweep": (HEAVY, 900, 870),
    "activelearning.select_batch": (HEAVY, 1800, 1740),
    "activelearning.propose_thresholds": (HEAVY, 900, 840),
    "activelearning.find_label_errors": (HEAVY, TRAIN, TRAIN - 60),
    "activelearning.retrain_on_new_gold": (HEAVY, 300, 280),
    "activelearning.retrain_scheduled": (HEAVY, 300, 280),
    "activelearning.resume_stalled_rounds": (HEAVY, 300, 280),
    "activelearning.prune_pool_scores": (HEAVY, 1800, 1740),
    "activelearning.find_label_errors_scheduled": (HEAVY, 300, 280),
    "activelearning.measure_drift": (LATE_ACK, 900, 870),
    # A chunk retries only when the backend is unreachable, by hand with backoff (labeling/llm/tasks.py).
    "llm.run_chunk": ({**LATE_ACK, "max_retries": 8}, 900, 840),
    "llm.resume_stalled": (LATE_ACK, 60, 50),
}


def registered_tasks() -> dict[str, Any]:
    current_app.loader.import_default_modules()
    return {name: task for name, task in current_app.tasks.items() if not name.startswith("celery.")}


def test_every_task_is_listed_here() -> None:
    assert sorted(registered_tasks()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_keeps_its_retry_and_time_limits(name: str) -> None:
    task = registered_tasks()[name]
    options, time_limit, soft_time_limit = EXPECTED[name]
    assert {option: getattr(task, option, None) for option in OPTIONS} == options
    assert (task.time_limit, task.soft_time_limit) == (time_limit, soft_time_limit)


def test_llm_tasks_run_on_their_own_queue() -> None:
    routes = settings.CELERY_TASK_ROUTES
    assert {name: routes[name]["queue"] for name in registered_tasks() if name.startswith("llm.")} == dict.fromkeys(
        ["llm.run_chunk", "llm.resume_stalled"], settings.LLM_QUEUE
    )


def test_label_studio_tasks_run_on_the_sync_queue() -> None:
    tasks = registered_tasks()
    assert {name: tasks[name].queue for name in tasks if name.startswith("labelstudio.")} == dict.fromkeys(
        ["labelstudio.pull", "labelstudio.push", "labelstudio.sync_project", "labelstudio.pull_all"], "sync"
    )
