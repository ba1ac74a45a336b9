"""The round pipeline table, and stage tasks taking the run id alone (old messages included)."""

from __future__ import annotations

from activelearning.models import RunStage, RunStatus, TrainingRun
from activelearning.services.pipeline import round_stage, round_stages
from activelearning.tasks import evaluate, propose_thresholds, retrain
from tests.activelearning.test_django_helpers import al_policy


def test_every_stage_is_declared_once_in_order_with_rising_progress() -> None:
    stages = round_stages()

    assert [stage.name for stage in stages] == list(RunStage.values)
    assert [stage.progress for stage in stages] == sorted(stage.progress for stage in stages)
    assert round_stage(RunStage.EVALUATING).task is evaluate and round_stage(RunStage.QUEUED).task is retrain
    assert [stage.name for stage in stages if stage.task is None] == [RunStage.DONE]


def test_a_stage_task_reads_the_rest_from_the_run_row(db) -> None:  # type: ignore[no-untyped-def]
    policy, _ = al_policy("abuse")
    run = TrainingRun.objects.create(policy=policy, status=RunStatus.RUNNING, stage=RunStage.THRESHOLDS)

    propose_thresholds.apply(args=(run.pk,))

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and "no champion: no thresholds" in run.log


def test_a_message_queued_before_the_upgrade_still_finds_its_round(db) -> None:  # type: ignore[no-untyped-def]
    policy, _ = al_policy("abuse")
    run = TrainingRun.objects.create(policy=policy, status=RunStatus.RUNNING, stage=RunStage.THRESHOLDS)

    propose_thresholds.apply(args=(policy.pk, run.pk))  # the old form: (policy id, run id)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert evaluate.round_id((12345, run.pk), {}) == run.pk == evaluate.round_id((run.pk,), {})
