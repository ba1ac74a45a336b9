"""Celery retry policies: every task names one of these instead of spelling its own options.

Each policy is a dict of Celery task options, spread into the decorator beside the task's own
time limits (which depend on the work, not on the policy):

    @shared_task(name="labeling.resolve_task", time_limit=60, soft_time_limit=50, **IDEMPOTENT)

All policies set `acks_late`: a task is acknowledged after it ran, so a worker that dies mid-task
leaves it to be redelivered. That is only safe because every task here is idempotent (design
invariant: tasks take ids and are idempotent), so keep it that way when you add one. Backoff is
exponential (1 s, 2 s, 4 s, … capped), with Celery's default full jitter unless a policy says
otherwise. Plain Python, no Django or Celery import: any app's tasks module may import it.
"""

from __future__ import annotations

from typing import Any

# Sweeps, beats and one-shot jobs that must not be retried on error: redelivered if the worker
# dies, otherwise the next beat (or the job's own sweep) runs them again. A task that retries on
# its own schedule (webhook delivery) uses this too and calls `self.retry` itself.
LATE_ACK: dict[str, Any] = {"acks_late": True}

# Short idempotent work (lease sweep, ingest chunks, consensus): any exception is taken for a
# transient one (database restart, lost connection, deadlock) and retried 5 times, ≤ 300 s apart.
IDEMPOTENT: dict[str, Any] = {
    **LATE_ACK,
    "autoretry_for": (Exception,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "max_retries": 5,
}

# Long idempotent steps (training, scoring, selection): as IDEMPOTENT, but 3 retries, because a
# try can take many minutes and a step that failed three times needs a person, not a fourth try.
HEAVY: dict[str, Any] = {**IDEMPOTENT, "max_retries": 3}


def remote_outage(unavailable: type[Exception]) -> dict[str, Any]:
    """Calls to an external service: only `unavailable` (server down, timeout, 5xx) is retried,
    10 times with backoff from 2 s up to 600 s and jitter; any other error is for a person
    (retrying would only repeat it)."""
    return {
        **LATE_ACK,
        "autoretry_for": (unavailable,),
        "retry_backoff": 2,
        "retry_backoff_max": 600,
        "retry_jitter": True,
        "max_retries": 10,
    }
