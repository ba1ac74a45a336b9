"""Rounds through a real Celery worker over the real Redis broker.

- A lead starts a round in the browser; the worker retrains on gold, evaluates, promotes, scores
  the pool in chunks and selects: active-learning tasks appear in the reviewers' queue.
- A worker SIGKILLed mid-training leaves no model registered; the redelivered task (acks_late,
  Redis visibility timeout) trains again and registers exactly one version.
"""

from __future__ import annotations

import hashlib
import os
import signal

import pytest
from django.test import Client
from django.utils.html import escape
from django.utils.text import Truncator

from activelearning.models import ModelVersion, PromotionDecision, RunStatus, ScoringRun, SelectionRound, TrainingRun
from activelearning.services.registry import model_root
from activelearning.services.rounds import training_run_start
from activelearning.tasks import retrain
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem, ModelDecision, ReviewTask, RoutingOutcome, TaskReason
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files  # noqa: F401 (fixture)
from tests.factories import ContentItemFactory, UserFactory
from tests.worker import celery_worker, unacked_deliveries_older_than, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("model_files")]


def _lead():  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Group

    lead = UserFactory(username="al-lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return lead


def test_a_lead_starts_a_round_and_informative_items_reach_the_queue(transactional_db, celery_worker_process) -> None:
    policy, queue = al_policy()
    _, pool = load_items(policy, "convabuse", items=360, gold=280)
    # Half the pool reached the policy as routed traffic; the rest is content no policy has seen.
    _decide(pool[::2], policy, RoutingOutcome.REVIEW)
    # Items of another policy's traffic (its gold and its routed decisions), and items only a shadow
    # model of this policy has scored: none is in this policy's pool, however uncertain.
    other, _ = al_policy("spam")
    _, other_pool = load_items(other, "toxic-spans", items=240, gold=40)
    _decide(other_pool, other, RoutingOutcome.AUTO_CLEAR)
    _decide(other_pool[:30], policy, RoutingOutcome.SHADOW)
    _decide([ContentItemFactory().pk for _ in range(10)], policy, RoutingOutcome.SHADOW)
    client = Client()
    client.force_login(_lead())

    response = client.post(
        "/models/rounds/start", {"policy": policy.key, "encoder": "hashed", "strategy": "entropy", "budget": "12"}
    )
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/models/rounds/{run.pk}/"
    # The lead's form has no test-only knobs; make training quick through the same params the API accepts.
    TrainingRun.objects.filter(pk=run.pk).update(
        params={**run.params, **{k: FAST_ROUND[k] for k in ("num_buckets", "n_bootstrap", "head")}}
    )

    wait_for(lambda: TrainingRun.objects.get(pk=run.pk).status != RunStatus.QUEUED, timeout=60)
    run = wait_for(lambda: _finished(run.pk), timeout=240, interval=0.5)

    assert run.status == RunStatus.SUCCEEDED, run.error + run.log
    version = ModelVersion.objects.get(training_run=run)
    assert version.metrics["n"] > 0 and version.metrics["per_class"]
    decision = PromotionDecision.objects.get(challenger=version)
    assert decision.reasons and decision.outcome in ("promoted", "rejected")
    scoring = ScoringRun.objects.get(training_run=run)
    assert scoring.status == "done" and scoring.items_scored == len(pool) and scoring.n_chunks >= 1
    tasks = ReviewTask.objects.filter(reason=TaskReason.ACTIVE_LEARNING, queue=queue, status="open")
    assert tasks.count() == 12 == SelectionRound.objects.get(training_run=run).tasks_created
    assert set(tasks.values_list("item_id", flat=True)) <= set(pool)
    page = client.get(f"/models/rounds/{run.pk}/")
    assert b"12 items sent to" in page.content and b'hx-trigger="every' not in page.content
    # The round page lists the chosen items by their (escaped, truncated) text and why they were chosen.
    html = page.content.decode()
    chosen = SelectionRound.objects.get(training_run=run).chosen
    for pick in chosen:
        text = ContentItem.objects.get(pk=pick["item_id"]).text
        assert escape(Truncator(text).chars(200)) in html
        assert f"Entropy: rank {pick['rank']}, uncertainty {pick['uncertainty']:.3f}" in html


def _decide(item_ids: list[int], policy, outcome: str) -> None:  # type: ignore[no-untyped-def]
    ModelDecision.objects.bulk_create(
        ModelDecision(
            item_id=item_id,
            policy=policy,
            model_name="upstream" if outcome != RoutingOutcome.SHADOW else f"al-{policy.key}",
            model_version="1",
            score=0.5,
            routing_outcome=outcome,
            sampling_propensity=1.0,
        )
        for item_id in item_ids
    )


def _finished(run_id: int) -> TrainingRun | None:
    run = TrainingRun.objects.get(pk=run_id)
    return run if not run.is_active else None


def test_sigkill_mid_training_registers_nothing_and_redelivery_completes(
    transactional_db, tmp_path, monkeypatch
) -> None:
    policy, _ = al_policy()
    load_items(policy, "convabuse", items=360, gold=280)
    # Long enough to be killed mid-way (600+ optimizer steps), short enough to finish on redelivery.
    slow = {
        **FAST_ROUND,
        "pipeline": "train",
        "num_buckets": 16384,
        "head": {**FAST_ROUND["head"], "max_epochs": 60, "patience": 60},
    }
    with monkeypatch.context() as m:  # not onto the training queue: only this test's worker may take it
        m.setattr("activelearning.services.rounds.enqueue_after_commit", lambda task, *ids: None)
        run = training_run_start(policy=policy, actor=SYSTEM, params=slow)
    # A worker of its own on a queue of its own, so no other worker can take the task.
    monkeypatch.setattr("tests.worker.QUEUES", "al-killtest")
    with celery_worker(tmp_path / "first.log") as first:
        retrain.apply_async((run.pk,), queue="al-killtest")
        # In the training stage the task has started and cannot have finished (no version yet).
        wait_for(lambda: TrainingRun.objects.get(pk=run.pk).stage == "training", timeout=120)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()

    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.attempts == 1
    assert not ModelVersion.objects.exists()
    # The next worker, with a short visibility timeout, hands the unacknowledged task out again on start.
    monkeypatch.setenv("CELERY_VISIBILITY_TIMEOUT", "2")
    wait_for(lambda: unacked_deliveries_older_than(2), timeout=30)

    with celery_worker(tmp_path / "second.log"):
        run = wait_for(lambda: _finished(run.pk), timeout=240, interval=0.5)

    assert run.status == RunStatus.SUCCEEDED and run.attempts == 2, run.error + run.log
    version = ModelVersion.objects.get()
    path = model_root() / version.artifact_path
    assert hashlib.sha256(path.read_bytes()).hexdigest() == version.artifact_sha256
    assert sorted(p.name for p in path.parent.glob(f"run-{run.pk}-*")) == [path.name]
    assert "training restarted (delivery 2)" in run.log
