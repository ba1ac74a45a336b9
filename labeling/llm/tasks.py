"""Celery tasks of LLM reviewers (queue `llm`): thin, take ids, call services.

`llm.run_chunk` processes one chunk of a run; the service enqueues the next chunk after its
commit, so a run is a chain of short, idempotent tasks (acks_late is safe: a redelivered chunk
finds `position` moved and stores nothing). Only `BackendUnavailable` is retried, with
exponential backoff; when the retries are spent, or on any other error, the run is marked
failed with the error shown on its page.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from activelearning.llm.base import BackendUnavailable
from reviewapp.retry import LATE_ACK

from .services.runs import llm_run_fail, llm_run_process_chunk, llm_runs_resume_stalled

CHUNK_RETRIES = 8
BACKOFF_MAX_SECONDS = 600


@shared_task(
    name="llm.run_chunk", bind=True, time_limit=900, soft_time_limit=840, max_retries=CHUNK_RETRIES, **LATE_ACK
)
def run_chunk(self, run_id: int) -> str:  # type: ignore[no-untyped-def]
    try:
        return llm_run_process_chunk(run_id=run_id)
    except BackendUnavailable as error:
        if self.request.retries >= CHUNK_RETRIES:
            llm_run_fail(run_id=run_id, error=f"The backend stayed unavailable: {error}")
            return "failed"
        raise self.retry(exc=error, countdown=min(2 ** (self.request.retries + 1), BACKOFF_MAX_SECONDS)) from None
    except SoftTimeLimitExceeded:
        llm_run_fail(run_id=run_id, error="A chunk took longer than its time limit; try a smaller chunk size.")
        return "failed"
    except Exception as error:
        llm_run_fail(run_id=run_id, error=f"{type(error).__name__}: {error}")
        raise


@shared_task(name="llm.resume_stalled", time_limit=60, soft_time_limit=50, **LATE_ACK)
def resume_stalled() -> list[int]:
    """Beat: re-enqueue runs whose worker died (heartbeat older than LLM_RUN_STALL_SECONDS)."""
    return llm_runs_resume_stalled()
