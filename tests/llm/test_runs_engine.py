"""The run engine in one process, with the real local model: the compare-and-set that makes a
duplicate delivery store nothing, cancel during a chunk, one annotation per item across runs,
and the seeded stratified gold sample."""

from __future__ import annotations

from collections import Counter

import pytest

from labeling.llm.models import LLMJudgement, RunStatus
from labeling.llm.services import runs
from labeling.llm.services.runs import llm_gold_sample_ids, llm_run_cancel, llm_run_process_chunk, llm_run_start
from labeling.models import Annotation, GoldLabel
from reviewapp.audit import SYSTEM
from tests.llm.runs_data import local_reviewer, make_gold_items


@pytest.fixture
def no_broker(monkeypatch):  # type: ignore[no-untyped-def]
    """Chunks are driven by the test: what the engine would enqueue is recorded, not sent."""
    sent: list[tuple[int, float]] = []
    monkeypatch.setattr(runs, "enqueue_chunk", lambda run_id, countdown=0: sent.append((run_id, countdown)))
    return sent


def test_the_gold_sample_is_seeded_and_keeps_each_labels_share(db) -> None:
    policy, _queue, ids = make_gold_items(16)  # 8 violating, 8 not violating

    sample = llm_gold_sample_ids(policy=policy, n=6, seed=3)

    assert sample == llm_gold_sample_ids(policy=policy, n=6, seed=3) == sorted(sample)
    assert sample != llm_gold_sample_ids(policy=policy, n=6, seed=4)
    labels = dict(GoldLabel.objects.filter(item_id__in=sample).values_list("item_id", "labels"))
    assert Counter(tuple(v) for v in labels.values()) == {("violating",): 3, ("not_violating",): 3}
    assert llm_gold_sample_ids(policy=policy, n=100) == sorted(ids)


@pytest.mark.slow
def test_a_duplicate_delivery_of_a_chunk_stores_nothing(transactional_db, no_broker) -> None:
    policy, _queue, ids = make_gold_items(6)
    run = llm_run_start(reviewer=local_reviewer(policy), kind="gold_sample", item_ids=ids, chunk_size=3, actor=SYSTEM)
    # Two deliveries of the same message claim the same chunk before either stores it.
    first, duplicate = runs.run_chunk_claim(run.pk), runs.run_chunk_claim(run.pk)

    assert runs.run_chunk_store(first, runs.run_chunk_answer(first), elapsed=0) == "more"
    assert runs.run_chunk_store(duplicate, runs.run_chunk_answer(duplicate), elapsed=0) == "stale"

    run.refresh_from_db()
    assert (run.position, run.items_done) == (3, 3)
    assert LLMJudgement.objects.filter(run=run).count() == 3 == Annotation.objects.count()
    assert [run_id for run_id, _ in no_broker] == [run.pk, run.pk]  # the start, then the winner's next chunk only


@pytest.mark.slow
def test_a_chunk_computed_while_the_run_is_cancelled_is_discarded(transactional_db, no_broker) -> None:
    policy, _queue, ids = make_gold_items(4)
    run = llm_run_start(reviewer=local_reviewer(policy), kind="gold_sample", item_ids=ids, chunk_size=4, actor=SYSTEM)
    claim = runs.run_chunk_claim(run.pk)
    answers = runs.run_chunk_answer(claim)

    llm_run_cancel(run_id=run.pk, actor=SYSTEM)

    assert runs.run_chunk_store(claim, answers, elapsed=0) == "stale"
    assert llm_run_process_chunk(run_id=run.pk) == RunStatus.CANCELLED
    assert not LLMJudgement.objects.filter(run=run).exists()


@pytest.mark.slow
def test_a_second_run_of_the_same_reviewer_does_not_annotate_an_item_twice(transactional_db, no_broker) -> None:
    policy, _queue, ids = make_gold_items(4)
    reviewer = local_reviewer(policy)
    for _ in range(2):
        run = llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=ids, chunk_size=4, actor=SYSTEM)
        assert llm_run_process_chunk(run_id=run.pk) == RunStatus.DONE

    assert LLMJudgement.objects.count() == 8 and LLMJudgement.objects.filter(cached=True).count() == 4
    assert Annotation.objects.filter(reviewer=reviewer.account).count() == 4


@pytest.mark.slow
def test_requests_per_minute_bounds_a_chunk_and_spaces_the_next_one(transactional_db, no_broker) -> None:
    policy, _queue, ids = make_gold_items(3)
    reviewer = local_reviewer(policy)
    reviewer.requests_per_minute = 2
    reviewer.save()
    run = llm_run_start(reviewer=reviewer, kind="gold_sample", item_ids=ids, chunk_size=20, actor=SYSTEM)

    assert llm_run_process_chunk(run_id=run.pk) == "more"

    run.refresh_from_db()
    assert run.position == 2  # at most a minute of requests per chunk
    assert 0 < no_broker[-1][1] <= 60  # the next chunk waits out the minute
