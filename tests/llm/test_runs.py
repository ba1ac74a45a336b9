"""LLM runs through a real Celery worker and the real local model (Gemma 3 270M, one thread).

Chunking, budgets, the answer cache, abstentions, and a worker SIGKILLed mid-run whose run a new
worker finishes from `position` after `llm_runs_resume_stalled`, with no item answered twice.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app
from labeling.llm.models import LLMJudgement, LLMRun, RunStatus
from labeling.llm.services.runs import llm_run_start, llm_runs_resume_stalled
from labeling.models import Annotation, AnnotationSource
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ContentItem, ReviewTask
from tests.llm.runs_data import local_reviewer, make_gold_items
from tests.worker import celery_worker, wait_for

pytestmark = pytest.mark.worker

FINISHED = {RunStatus.DONE, RunStatus.BUDGET, RunStatus.FAILED, RunStatus.CANCELLED}


def finished(run: LLMRun, timeout: float = 240) -> LLMRun:
    def check() -> LLMRun | None:
        run.refresh_from_db()
        return run if run.status in FINISHED else None

    return wait_for(check, timeout=timeout, interval=0.2)


@pytest.fixture
def worker(celery_worker_process, transactional_db):  # type: ignore[no-untyped-def]
    return celery_worker_process


def test_a_gold_run_in_chunks_answers_each_item_once_as_llm_annotations_that_leave_tasks_alone(worker) -> None:
    policy, _queue, ids = make_gold_items(12)
    reviewer = local_reviewer(policy)

    run = finished(llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=ids, chunk_size=4, actor=SYSTEM))

    assert run.status == RunStatus.DONE, run.error
    assert (run.position, run.items_done, run.items_cached) == (12, 12, 0)
    assert run.tokens_used > 0 and run.model_ms > 0
    judgements = LLMJudgement.objects.filter(run=run)
    assert sorted(judgements.values_list("item_id", flat=True)) == sorted(ids)
    annotations = Annotation.objects.filter(reviewer=reviewer.account)
    assert annotations.count() == judgements.exclude(label="").count() == 12
    assert set(annotations.values_list("source", flat=True)) == {AnnotationSource.LLM}
    assert set(ReviewTask.objects.filter(item_id__in=ids).values_list("annotation_count", "status")) == {(0, "open")}
    assert AuditEvent.objects.filter(action="llm_run.chunk", object_id=str(run.pk)).count() == 3


def test_the_item_budget_stops_the_run_at_exactly_that_many_items(worker) -> None:
    policy, _queue, ids = make_gold_items(12)
    reviewer = local_reviewer(policy)

    run = finished(
        llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=ids, chunk_size=2, budget_items=5, actor=SYSTEM)
    )

    assert run.status == RunStatus.BUDGET
    assert run.items_done == 5 == LLMJudgement.objects.filter(run=run).count()
    assert set(LLMJudgement.objects.filter(run=run).values_list("item_id", flat=True)) == set(ids[:5])


def test_the_token_budget_stops_before_the_next_chunk_once_reached(worker) -> None:
    policy, _queue, ids = make_gold_items(9)
    reviewer = local_reviewer(policy)

    run = finished(
        llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=ids, chunk_size=3, budget_tokens=1, actor=SYSTEM)
    )

    assert run.status == RunStatus.BUDGET
    assert run.items_done == 3 and run.tokens_used >= 1


def test_a_second_run_over_the_same_items_is_all_cache_hits_and_asks_the_model_nothing(worker) -> None:
    policy, _queue, ids = make_gold_items(8)
    reviewer = local_reviewer(policy)
    first = finished(llm_run_start(reviewer=reviewer, kind="injection", item_ids=ids, variants=[""], actor=SYSTEM))

    second = finished(llm_run_start(reviewer=reviewer, kind="injection", item_ids=ids, variants=[""], actor=SYSTEM))

    assert first.status == second.status == RunStatus.DONE
    assert (second.items_cached, second.model_ms, second.tokens_used) == (8, 0, 0)
    cached = LLMJudgement.objects.filter(run=second)
    assert cached.count() == 8 and all(j.cached for j in cached)
    labels = dict(LLMJudgement.objects.filter(run=first).values_list("item_id", "label"))
    assert dict(cached.values_list("item_id", "label")) == labels


def test_items_without_text_are_abstentions_without_annotations(worker) -> None:
    policy, queue, ids = make_gold_items(4)
    _policy, _queue, empty = make_gold_items(2, policy=policy, queue=queue, prefix="empty")
    ContentItem.objects.filter(pk__in=empty).update(text="", title="")
    reviewer = local_reviewer(policy)

    run = finished(llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=ids + empty, actor=SYSTEM))

    assert run.status == RunStatus.DONE and run.items_abstained == 2
    abstained = LLMJudgement.objects.filter(run=run, label="")
    assert set(abstained.values_list("item_id", flat=True)) == set(empty)
    assert all(j.abstain_reason and j.annotation_id is None for j in abstained)
    assert not Annotation.objects.filter(reviewer=reviewer.account, item_id__in=empty).exists()
    assert Annotation.objects.filter(reviewer=reviewer.account).count() == 4


KILL_QUEUE = "llm-kill-test"


@pytest.fixture
def own_llm_queue(monkeypatch, transactional_db):  # type: ignore[no-untyped-def]
    """Chunks of this test go to a queue only its own workers read (the session worker reads `llm`):
    the test process sends there by route, and its workers by REVIEWAPP_LLM_QUEUE."""
    monkeypatch.setattr("tests.worker.QUEUES", KILL_QUEUE)
    monkeypatch.setenv("REVIEWAPP_LLM_QUEUE", KILL_QUEUE)
    monkeypatch.setitem(app.conf.task_routes, "llm.run_chunk", {"queue": KILL_QUEUE})


@pytest.mark.slow
def test_a_run_whose_worker_is_sigkilled_is_finished_from_its_position_by_resume(own_llm_queue, tmp_path) -> None:
    policy, _queue, ids = make_gold_items(24)
    reviewer = local_reviewer(policy)
    with celery_worker(tmp_path / "killed.log") as killed:
        run = llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=ids, chunk_size=4, actor=SYSTEM)
        wait_for(lambda: LLMRun.objects.get(pk=run.pk).position > 0, timeout=240, interval=0.05)
        os.killpg(killed.pid, signal.SIGKILL)
        killed.wait()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and 0 < run.position < 24
    answered_before = set(LLMJudgement.objects.filter(run=run).values_list("item_id", flat=True))
    assert answered_before == set(ids[: run.position])

    # The sweep runs before a new worker starts: the killed worker may have left its next chunk's
    # message in the queue, which a new worker would take first (and stamp the heartbeat). Both
    # messages are then delivered; the position's compare-and-set lets only one store each chunk.
    LLMRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    assert llm_runs_resume_stalled() == [run.pk]
    with celery_worker(tmp_path / "second.log"):
        run = finished(run)

    assert run.status == RunStatus.DONE and run.items_done == 24
    judgements = list(LLMJudgement.objects.filter(run=run).values_list("item_id", flat=True))
    assert sorted(judgements) == sorted(ids)  # each item once: nothing lost, nothing twice
    assert Annotation.objects.filter(reviewer=reviewer.account).count() == 24
    assert AuditEvent.objects.filter(action="llm_run.resume", object_id=str(run.pk)).exists()
