"""With ConvAbuse in REVIEWAPP_DATA_DIR, a plain `manage.py seed_demo` fills the leads' pages from its
real crowd labels: gold that is the annotators' majority, open disagreements where they had none,
appeals on that gold, a dataset version of it, quality figures over the real answers, a round on
the ConvAbuse policy, and unlabelled ConvAbuse texts for that round to select from. The synthetic
corpus still gives the reviewers their queues."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils.html import escape

from activelearning.models import RunStatus, TrainingRun
from labeling.exports.models import DatasetSnapshot
from labeling.models import Adjudication, AdjudicationStatus, Annotation, Appeal, GoldLabel
from reviewapp.demo.lead_pages import APPEAL_STATEMENTS, DEMO_DATASET
from reviewapp.demo.real_data import LABELLED_RECORDS, POOL_IMPORT_ACTION, POOL_RECORDS
from reviewapp.models import AuditEvent, ContentItem, ModelDecision, ReviewTask, TaskStatus
from tests.reviewapp.test_demo import db_counts

# Seeds the synthetic corpus and imports 1,000 ConvAbuse examples with their crowd labels.
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def seed(logins: Path) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--logins-file", str(logins), stdout=out)
    return out.getvalue()


def pool_items() -> list[ContentItem]:
    """ConvAbuse items stored without their crowd labels: the round's pool."""
    items = ContentItem.objects.filter(source="convabuse")
    return [item for item in items if "source_annotations" not in item.metadata]


def test_a_plain_seed_fills_the_leads_pages_from_real_convabuse_labels_and_pools_unlabelled_texts(
    settings, convabuse_dir: Path, tmp_path: Path
) -> None:
    settings.REVIEWAPP_DATA_DIR = convabuse_dir.parent
    output = seed(tmp_path / "logins.txt")
    after_first = db_counts()
    second = seed(tmp_path / "logins.txt")

    assert db_counts() == after_first  # a second run creates nothing
    assert f"leads' pages: real ConvAbuse crowd labels ({convabuse_dir}/ConvAbuseEMNLPfull.csv is present" in output
    assert "leads' pages: real ConvAbuse crowd labels" in second
    assert re.search(r"ingested \d{3} demo decisions", output)  # reviewers' queues: the synthetic corpus
    assert ReviewTask.objects.filter(queue__slug="harassment-hate", status=TaskStatus.OPEN).exists()
    assert not Annotation.objects.filter(policy__key="harassment").exists()  # no simulated annotators
    # Gold is the ConvAbuse annotators' majority; where they had none, a lead adjudicates.
    gold = GoldLabel.objects.filter(policy__key="abuse").select_related("item")
    assert gold.count() > 900
    assert all(g.item.source == "convabuse" and g.labels == [g.item.metadata["source_label"]] for g in gold)
    open_ties = Adjudication.objects.filter(status=AdjudicationStatus.OPEN, task__policy__key="abuse")
    assert open_ties.count() >= 10
    for adjudication in open_ties.select_related("task__item"):
        metadata = adjudication.task.item.metadata
        assert metadata["source_annotations"] and "source_label" not in metadata  # no majority in the dataset
        votes = {tuple(labels) for labels in adjudication.task.annotations.values_list("labels", flat=True)}
        assert len(votes) > 1
    assert ContentItem.objects.filter(source="convabuse").count() == LABELLED_RECORDS + POOL_RECORDS
    # Appeals contest real gold; the dataset version holds that gold.
    appeals = list(Appeal.objects.select_related("task__item").order_by("pk"))
    assert [appeal.statement for appeal in appeals] == list(APPEAL_STATEMENTS)
    for appeal in appeals:
        assert appeal.task.item.source == "convabuse" and appeal.original_labels == ["abusive"]
    snapshot = DatasetSnapshot.objects.get(dataset__slug=DEMO_DATASET)
    excluded = sum(snapshot.stats.get("held_out_excluded", {}).values())
    assert snapshot.row_count + excluded == gold.values("item_id").distinct().count()
    # The round's pool: the next ConvAbuse texts, with no label, decision or task, so no policy has seen them.
    pool = pool_items()
    assert len(pool) == POOL_RECORDS
    said = f"round pool: the next {POOL_RECORDS} ConvAbuse examples as unlabelled items ({POOL_RECORDS} created"
    assert said in output
    ids = [item.pk for item in pool]
    assert all(item.text and "source_label" not in item.metadata for item in pool)
    assert not ReviewTask.objects.filter(item_id__in=ids).exists()
    assert not ModelDecision.objects.filter(item_id__in=ids).exists()
    assert not GoldLabel.objects.filter(item_id__in=ids).exists()
    assert AuditEvent.objects.get(action=POOL_IMPORT_ACTION).after["items_created"] == POOL_RECORDS
    run = TrainingRun.objects.get()
    assert run.policy.key == "abuse" and run.status == RunStatus.QUEUED
    assert f"round {run.pk} of abuse queued for the worker" in output

    lead = Client()
    lead.force_login(User.objects.get(username="lead"))
    answers = Annotation.objects.filter(policy__key="abuse").count()
    quality = lead.get("/lead/quality/?policy=abuse").content.decode()
    assert f"({answers:,} answers)" in quality
    for figure in ("Percent agreement", "Fleiss", "Krippendorff"):
        row = re.search(rf"{figure}.*?</tr>", quality, re.S)
        assert row and re.search(r"\d\.\d{3} – \d\.\d{3}", row.group(0)), figure
    adjudications = lead.get("/lead/adjudications/").content.decode()
    assert escape(open_ties.order_by("pk").first().task.item.text) in adjudications  # type: ignore[union-attr]
