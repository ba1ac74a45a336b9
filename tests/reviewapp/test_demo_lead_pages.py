"""After `manage.py seed_demo` without the public data every lead page has something to show: open
disagreements, agreement figures with intervals, gold in a dataset version, open appeals with
statements, a round — from simulated annotators. With ConvAbuse present: test_demo_real_data.py."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils.html import escape

from activelearning.models import RunStatus, RunTrigger, TrainingRun
from labeling.exports.models import DatasetSnapshot
from labeling.models import Adjudication, AdjudicationReason, AdjudicationStatus, Annotation, Appeal, GoldLabel
from reviewapp.demo.lead_pages import APPEAL_STATEMENTS, DEMO_DATASET
from reviewapp.models import QueueKind, TaskStatus

# Seeds the synthetic corpus and the demo annotators' answers on 400 comments.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def seeded(settings, tmp_path: Path) -> str:
    settings.REVIEWAPP_DATA_DIR = tmp_path / "no-data"  # the simulated path; restored after the test
    out = io.StringIO()
    call_command("seed_demo", "--logins-file", str(tmp_path / "logins.txt"), stdout=out)
    return out.getvalue()


@pytest.fixture
def lead(seeded: str) -> Client:
    client = Client()
    client.force_login(User.objects.get(username="lead"))
    return client


def page_text(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_open_disagreements_wait_for_a_lead(lead: Client) -> None:
    disagreements = Adjudication.objects.filter(
        status=AdjudicationStatus.OPEN, reason=AdjudicationReason.DISAGREEMENT
    ).select_related("task__item")
    assert disagreements.count() >= 10
    for adjudication in disagreements:  # the demo annotators really disagreed on each
        votes = {tuple(labels) for labels in adjudication.task.annotations.values_list("labels", flat=True)}
        assert len(votes) > 1

    html = page_text(lead, "/lead/adjudications/")

    assert f"{disagreements.count()} open" in html
    assert escape(disagreements.order_by("pk").first().task.item.text) in html  # type: ignore[union-attr]


def test_quality_shows_agreement_with_intervals_over_the_recorded_answers(lead: Client) -> None:
    answers = Annotation.objects.filter(policy__key="harassment").count()

    html = page_text(lead, "/lead/quality/?policy=harassment")

    assert f"({answers} answers)" in html
    for figure in ("Percent agreement", "Fleiss", "Krippendorff"):
        row = re.search(rf"{figure}.*?</tr>", html, re.S)
        assert row and re.search(r"\d\.\d{3} – \d\.\d{3}", row.group(0)), figure


def test_gold_labels_are_in_a_built_dataset_version(lead: Client) -> None:
    current_gold = GoldLabel.objects.filter(policy__key="harassment").values("item_id").distinct().count()
    snapshot = DatasetSnapshot.objects.get(dataset__slug=DEMO_DATASET)

    excluded = sum(snapshot.stats.get("held_out_excluded", {}).values())
    assert snapshot.version == 1 and current_gold > 200
    assert snapshot.row_count + excluded == current_gold
    assert snapshot.content_hash in page_text(lead, f"/lead/datasets/{DEMO_DATASET}/v1/")


def test_open_appeals_with_statements_wait_in_the_appeals_queue(seeded: str) -> None:
    appeals = list(Appeal.objects.select_related("task__queue").order_by("pk"))

    assert [appeal.statement for appeal in appeals] == list(APPEAL_STATEMENTS)
    for appeal in appeals:
        assert appeal.status == "open" and appeal.original_labels
        assert appeal.task.status == TaskStatus.OPEN and appeal.task.queue.kind == QueueKind.APPEALS
    members = set(appeals[0].task.queue.members.values_list("username", flat=True))
    assert {"reviewer", "lead"} <= members


def test_a_first_round_is_queued_for_the_worker(seeded: str) -> None:
    run = TrainingRun.objects.get()

    assert run.policy.key == "harassment" and run.status == RunStatus.QUEUED
    assert run.trigger == RunTrigger.NEW_GOLD
    assert f"round {run.pk} of harassment queued for the worker" in seeded
