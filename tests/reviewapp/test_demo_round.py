"""The round `seed_demo` queues is carried out by a real Celery worker: the models page then shows a
champion trained on the demo's gold, its charts, and a threshold proposal for a lead to approve.
With ConvAbuse present, the round selects only unlabelled ConvAbuse texts and its page shows them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils.html import escape

from activelearning.models import ModelStatus, ModelVersion, RunStatus, SelectionRound, ThresholdProposal, TrainingRun
from labeling.models import GoldLabel
from reviewapp.models import ContentItem, ReviewTask
from tests.activelearning.test_django_helpers import model_files  # noqa: F401 (fixture)
from tests.worker import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("model_files")]


def _finished(run_id: int) -> TrainingRun | None:
    run = TrainingRun.objects.get(pk=run_id)
    return run if not run.is_active else None


def test_the_demo_round_trains_a_champion_the_models_page_shows(
    transactional_db, celery_worker_process, settings, tmp_path: Path
) -> None:
    settings.REVIEWAPP_DATA_DIR = tmp_path / "no-data"  # the simulated annotators' path
    call_command("seed_demo", "--logins-file", str(tmp_path / "logins.txt"), stdout=io.StringIO())
    run = TrainingRun.objects.get(policy__key="harassment")

    run = wait_for(lambda: _finished(run.pk), timeout=600, interval=0.5)

    assert run.status == RunStatus.SUCCEEDED, run.error + run.log
    gold_items = GoldLabel.objects.filter(policy=run.policy).values("item_id").distinct().count()
    assert run.counts["gold"] == gold_items
    champion = ModelVersion.objects.get(policy=run.policy, status=ModelStatus.CHAMPION)
    assert champion.training_run_id == run.pk and champion.metrics["n"] >= 20
    assert champion.metrics["macro_f1"] > champion.metrics["baseline_macro_f1"]
    assert ThresholdProposal.objects.filter(policy=run.policy, status="pending").exists()
    lead = Client()
    lead.force_login(User.objects.get(username="lead"))
    html = lead.get("/models/?policy=harassment").content.decode()
    assert "<strong>Champion</strong>" in html
    assert html.count("<svg") >= 2  # precision-recall and reliability charts of the champion


def test_the_real_data_round_selects_unlabelled_convabuse_texts_and_shows_them(
    transactional_db, celery_worker_process, settings, convabuse_dir: Path, tmp_path: Path
) -> None:
    settings.REVIEWAPP_DATA_DIR = convabuse_dir.parent
    call_command("seed_demo", "--logins-file", str(tmp_path / "logins.txt"), stdout=io.StringIO())
    run = TrainingRun.objects.get(policy__key="abuse")

    run = wait_for(lambda: _finished(run.pk), timeout=900, interval=0.5)

    assert run.status == RunStatus.SUCCEEDED, run.error + run.log
    assert ModelVersion.objects.filter(policy=run.policy, status=ModelStatus.CHAMPION, training_run=run).exists()
    selection = SelectionRound.objects.get(training_run=run)
    chosen_ids = [row["item_id"] for row in selection.chosen]
    assert chosen_ids and selection.tasks_created == len(chosen_ids)
    chosen = ContentItem.objects.in_bulk(chosen_ids)
    # Only the pool: ConvAbuse texts stored without their crowd labels, none from the synthetic corpus.
    assert all(item.source == "convabuse" and "source_annotations" not in item.metadata for item in chosen.values())
    tasks = ReviewTask.objects.filter(item_id__in=chosen_ids, policy=run.policy)
    assert tasks.count() == len(chosen_ids)
    assert {"reviewer", "reviewer2"} <= set(selection.queue.members.values_list("username", flat=True))
    lead = Client()
    lead.force_login(User.objects.get(username="lead"))
    html = lead.get(f"/models/rounds/{run.pk}/").content.decode()
    first = chosen[chosen_ids[0]]
    assert escape(first.text[:40]) in html
