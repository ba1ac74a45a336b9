"""An out-of-fold label-error check handed to a real Celery worker over the real Redis broker."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command

from activelearning.models import LabelErrorRun, OutOfFoldScore, RunStatus
from reviewapp.models import AuditEvent, ReviewTask, TaskReason
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
