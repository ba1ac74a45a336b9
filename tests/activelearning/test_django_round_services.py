"""A whole round through the services, in-process: train, register, evaluate, promote, score, select."""

from __future__ import annotations

import hashlib

import pytest

from activelearning.models import (
    ModelStatus,
    ModelVersion,
    PoolScore,
    PromotionDecision,
    RunStatus,
    ScoreChunk,
    SelectionRound,
)
from activelearning.services.evaluation import model_version_evaluate
from activelearning.services.promotion import model_version_promote
from activelearning.services.registry import model_root
from activelearning.services.rounds import training_run_start
from activelearning.services.scoring import pool_chunk_score, pool_scoring_start, scoring_run_maybe_finish
from activelearning.services.selection import selection_round_run
from activelearning.services.training import training_run_execute
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ReviewTask, TaskReason
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files  # noqa: F401 (fixture)

# Slow tier: trains and evaluates real models on real data.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("model_files")]


@pytest.fixture
def toxic(db):  # type: ignore[no-untyped-def]
    policy, queue = al_policy()
    gold, pool = load_items(policy, "convabuse", items=900, gold=800)
    return policy, queue, gold, pool


def _trained(policy, django_capture_on_commit_callbacks, **params):  # type: ignore[no-untyped-def]
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params={**FAST_ROUND, **params})
    return run, training_run_execute(run_id=run.pk)


def test_training_registers_a_version_whose_file_matches_its_sha256(toxic, django_capture_on_commit_callbacks) -> None:
    policy, _, gold, _ = toxic
    run, version = _trained(policy, django_capture_on_commit_callbacks)

    assert version is not None and version.number == 1 and version.status == ModelStatus.CANDIDATE
    data = (model_root() / version.artifact_path).read_bytes()
    assert hashlib.sha256(data).hexdigest() == version.artifact_sha256 and len(data) == version.artifact_bytes
    run.refresh_from_db()
    assert run.attempts == 1 and run.gold_watermark == max_gold_id(policy)
    assert run.counts["gold"] == len(gold) and len(run.training_set_sha256) == 64
    assert AuditEvent.objects.filter(action="model.registered", object_id=str(version.pk)).exists()


def max_gold_id(policy) -> int:  # type: ignore[no-untyped-def]
    return policy.gold_labels.order_by("-id").values_list("id", flat=True).first()


def test_a_redelivered_training_task_returns_the_registered_version(toxic, django_capture_on_commit_callbacks) -> None:
    run, version = _trained(toxic[0], django_capture_on_commit_callbacks)

    again = training_run_execute(run_id=run.pk)

    assert again == version and ModelVersion.objects.filter(training_run=run).count() == 1


def test_a_killed_attempts_orphan_file_is_removed_when_a_later_attempt_registers(
    toxic, django_capture_on_commit_callbacks
) -> None:
    policy = toxic[0]
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params=FAST_ROUND)
    orphan = model_root() / policy.key / f"run-{run.pk}-deadbeef0000.pt"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"half a model")

    with django_capture_on_commit_callbacks(execute=True):
        version = training_run_execute(run_id=run.pk)

    assert not orphan.exists()
    assert (model_root() / version.artifact_path).is_file()


def test_too_little_gold_fails_the_round_with_the_reason(db, django_capture_on_commit_callbacks) -> None:
    policy, _ = al_policy()
    load_items(policy, "toxic-spans", items=30, gold=30)

    run, version = _trained(policy, django_capture_on_commit_callbacks)

    run.refresh_from_db()
    assert version is None and run.status == RunStatus.FAILED
    assert "usable gold labels; a round needs at least 50" in run.error
    assert not ModelVersion.objects.exists()


def test_round_evaluates_promotes_scores_in_chunks_and_selects(toxic, django_capture_on_commit_callbacks) -> None:
    policy, queue, _, pool = toxic
    run, version = _trained(policy, django_capture_on_commit_callbacks)
    metrics = model_version_evaluate(version_id=version.pk)
    assert metrics["n"] >= 40 and 0 <= metrics["macro_f1"] <= 1 and metrics["pr_curves"]["violating"]

    decision = model_version_promote(version_id=version.pk)
    assert decision.outcome == "promoted" and "No champion yet" in decision.reasons[0]

    with django_capture_on_commit_callbacks(execute=False):
        scoring = pool_scoring_start(version_id=version.pk, run_id=run.pk, chunk_size=25)
    scored = sum(pool_chunk_score(scoring_run_id=scoring.pk, index=i) for i in range(scoring.n_chunks))
    assert scored == len(pool) == PoolScore.objects.filter(model_version=version).count()
    assert pool_chunk_score(scoring_run_id=scoring.pk, index=0) == 0  # a finished chunk is skipped
    assert ScoreChunk.objects.filter(scoring_run=scoring).count() == scoring.n_chunks
    assert scoring_run_maybe_finish(scoring_run_id=scoring.pk) == run.pk  # the round goes on, once
    assert scoring_run_maybe_finish(scoring_run_id=scoring.pk) is None
    scoring.refresh_from_db()
    assert scoring.status == "done" and scoring.items_scored == len(pool)

    selection = selection_round_run(version_id=version.pk, strategy="entropy", budget=10, run_id=run.pk)
    tasks = ReviewTask.objects.filter(reason=TaskReason.ACTIVE_LEARNING, queue=queue)
    assert selection.tasks_created == 10 == tasks.count()
    assert {c["item_id"] for c in selection.chosen} <= set(pool)
    uncertainties = [c["uncertainty"] for c in selection.chosen]
    assert min(uncertainties) >= PoolScore.objects.filter(model_version=version).order_by("-uncertainty")[9].uncertainty
    assert selection_round_run(version_id=version.pk, strategy="entropy", budget=10, run_id=run.pk) == selection
    assert SelectionRound.objects.count() == 1 and tasks.count() == 10
    assert PromotionDecision.objects.get().challenger == version
