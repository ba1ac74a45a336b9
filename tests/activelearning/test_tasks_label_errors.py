"""Out-of-fold label-error checks on a real Celery worker over the real Redis broker: one handed
over by the command, and the one a finished round starts by itself."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from activelearning.models import LabelErrorRun, LabelErrorTrigger, OutOfFoldScore, RunStatus
from activelearning.services.label_error_loop import label_error_run_after_round
from activelearning.services.rounds import training_run_start
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ReviewTask, TaskReason
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files  # noqa: F401 (fixture)
from tests.activelearning.test_django_out_of_fold import FAST, flip_unanimous_gold, import_convabuse
from tests.factories import QueueFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.worker]


def test_the_command_hands_a_check_to_the_worker_which_records_and_queues_it(
    transactional_db, celery_worker_process, convabuse_dir: Path
) -> None:
    policy = import_convabuse(convabuse_dir, 300)
    flip_unanimous_gold(policy, 5)
    QueueFactory(slug="abuse-label-errors")
    out = io.StringIO()
    call_command(
        "find_label_errors",
        "--policy",
        policy.key,
        "--enqueue",
        "--top-k",
        "5",
        "--queue",
        "abuse-label-errors",
        "--k",
        "3",
        *FAST,
        stdout=out,
    )
    run = LabelErrorRun.objects.get()
    assert out.getvalue().strip() == f"out-of-fold run {run.pk} queued for a worker"

    run = wait_for(
        lambda: LabelErrorRun.objects.filter(pk=run.pk).exclude(status__in=("queued", "running")).first(),
        timeout=240,
        interval=0.5,
    )

    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 1 and len(run.folds) == 3
    assert OutOfFoldScore.objects.filter(run=run).count() == run.counts["scored"] > 250
    tasks = ReviewTask.objects.filter(reason=TaskReason.LABEL_ERROR, queue__slug="abuse-label-errors")
    assert sorted(tasks.values_list("pk", flat=True)) == sorted(run.task_ids) and len(run.task_ids) == 5
    assert AuditEvent.objects.get(action="label_errors.queued").after["probabilities"]["label_error_run"] == run.pk
    assert (
        AuditEvent.objects.filter(action="label_error_run.requested", object_id=str(run.pk)).get().after["in"]
        == "worker"
    )


@pytest.mark.usefixtures("model_files")
def test_a_finished_round_starts_one_label_error_check_on_the_worker(transactional_db, celery_worker_process) -> None:
    policy, _ = al_policy("abuse")
    load_items(policy, "convabuse", items=300, gold=280)
    round_ = training_run_start(policy=policy, actor=SYSTEM, params={**FAST_ROUND, "pipeline": "train"})

    check = wait_for(
        lambda: LabelErrorRun.objects.filter(training_run=round_).exclude(status__in=("queued", "running")).first(),
        timeout=300,
        interval=0.5,
    )

    round_.refresh_from_db()
    assert round_.status == RunStatus.SUCCEEDED, round_.error + round_.log
    assert check.status == RunStatus.SUCCEEDED, check.error
    assert check.trigger == LabelErrorTrigger.ROUND and check.created_by_label == "system"
    # The check reads the policy's gold with the round's encoder and head settings.
    assert check.params["encoder"] == "hashed" and check.params["num_buckets"] == FAST_ROUND["num_buckets"]
    assert check.params["head"] == FAST_ROUND["head"] and check.k == 5 and len(check.folds) == 5
    assert check.gold_watermark == round_.gold_watermark and check.counts["scored"] > 250
    assert check.task_ids == [] and not ReviewTask.objects.filter(reason=TaskReason.LABEL_ERROR).exists()
    requested = AuditEvent.objects.get(action="label_error_run.requested", object_id=str(check.pk))
    assert requested.after["trigger"] == "round" and requested.after["training_run"] == round_.pk

    # The end of the round delivered again (acks_late redelivery) starts nothing more.
    assert label_error_run_after_round(training_run_id=round_.pk) == check
    assert LabelErrorRun.objects.count() == 1
