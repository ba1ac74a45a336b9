"""Crowd annotations import: real Toxic Spans and ConvAbuse labels as annotations, gold and adjudications."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.management import call_command
from django.core.management.base import CommandError

from labeling.datasets import DatasetRecord, majority_label, read_convabuse, read_toxic_spans
from labeling.exports.models import DatasetSnapshot
from labeling.models import (
    Adjudication,
    AdjudicationReason,
    AdjudicationStatus,
    Annotation,
    AnnotationSource,
    Appeal,
    GoldLabel,
    GoldSource,
    Policy,
)
from labeling.services.adjudication import adjudication_send_back
from labeling.services.crowd import CROWD_GROUP, crowd_annotations_import, crowd_queue_ensure, crowd_username
from labeling.stats.agreement import krippendorff_alpha, units_from_triples
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ReviewTask, TaskReason, TaskStatus
from reviewapp.services.imports import DATASET_POLICIES, items_import, policy_ensure
from tests.factories import UserFactory

LIMIT = 300


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_dataset", *args, stdout=out)
    return out.getvalue()


def first_answers(record: DatasetRecord) -> dict[str, str]:
    """annotator → label of each annotator's first answer (what becomes an annotation)."""
    answers: dict[str, str] = {}
    for answer in record.annotations:
        answers.setdefault(answer.annotator, answer.label)
    return answers


def check_resolution(records: list[DatasetRecord], policy: Policy) -> tuple[int, int]:
    """Every record with a strict majority has consensus gold with its provenance; every tie an
    adjudication. Returns (gold, adjudications)."""
    gold = {g.item.external_id: g for g in GoldLabel.objects.filter(policy=policy).select_related("item")}
    adjudications = {
        a.task.item.external_id: a
        for a in Adjudication.objects.filter(task__policy=policy).select_related("task__item")
    }
    for record in records:
        answers = first_answers(record)
        if record.label is None:
            assert record.external_id not in gold
            adjudication = adjudications[record.external_id]
            assert (adjudication.reason, adjudication.status) == (AdjudicationReason.DISAGREEMENT, "open")
            continue
        label = gold[record.external_id]
        assert record.external_id not in adjudications
        assert label.labels == [record.label] and label.source == GoldSource.CONSENSUS
        assert label.n_annotations == len(answers) == len(label.annotation_ids)
        assert label.agreement == pytest.approx(Counter(answers.values())[record.label] / len(answers))
        assert label.route == "backfill" and label.sampling_propensity == 1.0 and label.version == 1
        assert label.policy_version == policy.current_version()
    assert len(gold) + len(adjudications) == len(records)
    return len(gold), len(adjudications)


def test_crowd_username_is_a_valid_django_username() -> None:
    assert crowd_username("ts", "868") == "ts-868"
    assert crowd_username("ca", "Annotator3") == "ca-annotator3"
    odd = crowd_username("ts", "w 1/2")
    assert odd.startswith("ts-w-1-2-") and odd != crowd_username("ts", "w:1/2")
    assert len(crowd_username("ts", "x" * 400)) == 150
    UnicodeUsernameValidator()(odd)


@pytest.mark.slow
@pytest.mark.django_db
class TestToxicSpans:
    def test_each_crowd_label_becomes_an_annotation_by_its_worker(self, toxic_spans_dir: Path) -> None:
        output = run("toxic-spans", str(toxic_spans_dir), "--as-annotations", "--limit", str(LIMIT))
        records = list(read_toxic_spans(toxic_spans_dir, LIMIT))
        workers = {answer.annotator for record in records for answer in record.annotations}
        expected = {
            (record.external_id, f"ts-{worker}", label)
            for record in records
            for worker, label in first_answers(record).items()
        }
        assert f"annotations: {len(expected)} created, 0 already present; crowd reviewers: {len(workers)}" in output
        policy = Policy.objects.get(key="toxicity")
        annotations = Annotation.objects.filter(policy=policy)
        stored = {
            (ext, user, labels[0])
            for ext, user, labels in annotations.values_list("item__external_id", "reviewer__username", "labels")
        }
        assert stored == expected and annotations.count() == len(expected)
        assert set(annotations.values_list("source", "handle_time_ms", "policy_version", "task__queue__slug")) == {
            (AnnotationSource.IMPORT, 0, policy.current_version().pk, "toxicity-crowd")
        }
        crowd = User.objects.filter(groups__name=CROWD_GROUP)
        assert crowd.count() == len(workers)
        assert not any(user.has_usable_password() for user in crowd)
        assert not crowd.filter(review_queues__isnull=False).exists()

    def test_tasks_resolve_into_consensus_gold_and_ties_into_adjudications(self, toxic_spans_dir: Path) -> None:
        run("toxic-spans", str(toxic_spans_dir), "--as-annotations", "--limit", str(LIMIT))
        records = list(read_toxic_spans(toxic_spans_dir, LIMIT))
        policy = Policy.objects.get(key="toxicity")
        gold, adjudications = check_resolution(records, policy)
        assert (gold, adjudications) == (
            sum(r.label is not None for r in records),
            sum(r.label is None for r in records),
        )
        tasks = ReviewTask.objects.filter(policy=policy)
        assert tasks.count() == LIMIT and not tasks.filter(resolved_at__isnull=True).exists()
        for task in tasks.filter(status=TaskStatus.COMPLETED):
            assert task.annotation_count == task.required_annotations == task.annotations.count()

    def test_real_ties_go_to_adjudication(self, toxic_spans_dir: Path) -> None:
        every = list(read_toxic_spans(toxic_spans_dir))
        ties = [record for record in every if record.label is None]
        assert ties, "the published Toxic Spans files have comments with tied crowd labels"
        records = ties[:10] + [record for record in every if record.label is not None][:10]
        policy, _ = policy_ensure(spec=DATASET_POLICIES["toxic-spans"], actor=SYSTEM)
        queue, _ = crowd_queue_ensure(policy=policy, actor=SYSTEM)
        items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        result = crowd_annotations_import(
            records=records, policy=policy, queue=queue, actor=SYSTEM, dataset="toxic-spans"
        )
        assert result.outcomes == Counter({"gold": 10, "adjudication": len(ties[:10])})
        assert check_resolution(records, policy) == (10, len(ties[:10]))
        assert ReviewTask.objects.filter(policy=policy, status=TaskStatus.ESCALATED).count() == len(ties[:10])

    def test_reimport_creates_nothing(self, toxic_spans_dir: Path) -> None:
        run("toxic-spans", str(toxic_spans_dir), "--as-annotations", "--limit", "50")
        counts = [model.objects.count() for model in (Annotation, GoldLabel, Adjudication, User, AuditEvent)]
        output = run("toxic-spans", str(toxic_spans_dir), "--as-annotations", "--limit", "50")
        assert [model.objects.count() for model in (Annotation, GoldLabel, Adjudication, User, AuditEvent)] == counts
        assert "annotations: 0 created" in output and "crowd reviewers: 0 created" in output
        assert "resolved: none" in output

    def test_audit_has_a_summary_and_the_services_events(self, toxic_spans_dir: Path) -> None:
        run("toxic-spans", str(toxic_spans_dir), "--as-annotations", "--limit", "50")
        actions = Counter(AuditEvent.objects.values_list("action", flat=True))
        summary = AuditEvent.objects.get(action="import.annotations")
        assert summary.after["annotations_created"] == Annotation.objects.count()
        assert summary.after["outcomes"] == {"gold": GoldLabel.objects.count()} | (
            {"adjudication": Adjudication.objects.count()} if Adjudication.objects.exists() else {}
        )
        assert actions["task.created"] == actions["task.completed"] == 50
        assert actions["gold.created"] == GoldLabel.objects.count()
        assert actions["adjudication.requested"] == Adjudication.objects.count()
        assert actions["user.created"] == User.objects.filter(groups__name=CROWD_GROUP).count()

    def test_agreement_of_the_imported_annotations_matches_the_reference_package(self, toxic_spans_dir: Path) -> None:
        krippendorff = pytest.importorskip("krippendorff")
        run("toxic-spans", str(toxic_spans_dir), "--as-annotations", "--limit", str(LIMIT))
        triples = Annotation.objects.values_list("item_id", "reviewer_id", "labels")
        from_db = krippendorff_alpha(units_from_triples((str(i), str(r), labels[0]) for i, r, labels in triples))
        records = list(read_toxic_spans(toxic_spans_dir, LIMIT))
        workers = sorted({a.annotator for r in records for a in r.annotations})
        matrix = np.full((len(workers), len(records)), np.nan)
        for j, record in enumerate(records):
            for worker, label in first_answers(record).items():
                matrix[workers.index(worker), j] = ["toxic", "not_toxic"].index(label)
        reference = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal")
        assert from_db == pytest.approx(reference, abs=1e-9)


@pytest.mark.slow
@pytest.mark.django_db
class TestConvAbuse:
    def test_annotations_gold_and_adjudications(self, convabuse_dir: Path) -> None:
        output = run("convabuse", str(convabuse_dir), "--as-annotations", "--limit", str(LIMIT))
        records = list(read_convabuse(convabuse_dir, LIMIT))
        repeats = sum(len(r.annotations) - len(first_answers(r)) for r in records)
        assert repeats > 0, "ConvAbuse has repeat answers by the same annotator"
        assert f"skipped {repeats} repeat answers" in output
        policy = Policy.objects.get(key="abuse")
        assert Annotation.objects.filter(policy=policy).count() == sum(len(first_answers(r)) for r in records)
        usernames = set(User.objects.filter(groups__name=CROWD_GROUP).values_list("username", flat=True))
        assert usernames == {crowd_username("ca", a.annotator) for r in records for a in r.annotations}
        assert usernames <= {f"ca-annotator{n}" for n in range(1, 9)}
        gold, adjudications = check_resolution(records, policy)
        assert adjudications == sum(r.label is None for r in records) > 0
        assert gold + adjudications == LIMIT

    def test_severity_and_repeats_are_kept(self, convabuse_dir: Path) -> None:
        run("convabuse", str(convabuse_dir), "--as-annotations", "--limit", "100")
        records = list(read_convabuse(convabuse_dir, 100))
        expected = {
            (r.external_id, crowd_username("ca", a.annotator), a.severity or "")
            for r in records
            for a in r.annotations
            if not a.extra.get("repeat")
        }
        stored = set(Annotation.objects.values_list("item__external_id", "reviewer__username", "severity"))
        assert stored == expected and {"mild", "strong"} <= {severity for *_, severity in stored}
        with_repeat = next(r for r in records if any(a.extra.get("repeat") for a in r.annotations))
        task = ReviewTask.objects.get(item__external_id=with_repeat.external_id)
        assert any(a.get("repeat") for a in task.item.metadata["source_annotations"])
        assert task.annotations.count() == len(first_answers(with_repeat))
        labels = [majority_label(r.annotations) for r in records]
        assert GoldLabel.objects.count() == sum(label is not None for label in labels)

    def test_reimport_leaves_an_item_a_lead_sent_back_alone(self, convabuse_dir: Path) -> None:
        run("convabuse", str(convabuse_dir), "--as-annotations", "--limit", "100")
        adjudication = Adjudication.objects.filter(status=AdjudicationStatus.OPEN).first()
        assert adjudication is not None
        lead = UserFactory(username="lead")
        task = adjudication_send_back(adjudication_id=adjudication.pk, lead=lead, note="Read the bot's turn first.")
        run("convabuse", str(convabuse_dir), "--as-annotations", "--limit", "100")
        task.refresh_from_db()
        assert task.status == TaskStatus.OPEN and task.required_annotations == task.annotation_count + 1


@pytest.mark.django_db
def test_as_annotations_refuses_files_without_per_annotator_labels(tmp_path: Path) -> None:
    data = tmp_path / "labels.csv"
    data.write_text("id,text,label\n1,hello,ok\n2,bye,bad\n", encoding="utf-8")
    with pytest.raises(CommandError, match="per-annotator labels"):
        run("csv", str(data), "--as-annotations")
    assert not ReviewTask.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db
def test_seed_demo_loads_real_data_as_crowd_annotations(toxic_spans_dir: Path, tmp_path: Path) -> None:
    out = io.StringIO()
    logins = tmp_path / "logins.txt"
    call_command("seed_demo", "--logins-file", str(logins), "--data", str(toxic_spans_dir), "--limit", "40", stdout=out)
    assert "items: 40 created" in out.getvalue() and "annotations: " in out.getvalue()
    imported = ReviewTask.objects.exclude(reason=TaskReason.APPEAL)
    queue = imported.values_list("queue__slug", flat=True).distinct().get()
    assert queue == "toxicity-crowd"
    assert GoldLabel.objects.count() + Adjudication.objects.count() == 40
    # The leads' pages are filled from this data: appeals contest real gold, a dataset version holds it.
    appeals = Appeal.objects.select_related("task__queue")
    assert appeals.count() == 4 and {a.original_labels[0] for a in appeals} == {"toxic"}
    assert {a.task.queue.kind for a in appeals} == {"appeals"}
    assert DatasetSnapshot.objects.get(dataset__slug="demo-gold").row_count > 0
    assert "no round started: Toxicity has gold labels on" in out.getvalue()  # 40 items: too few
    members = set(User.objects.filter(review_queues__slug=queue).values_list("username", flat=True))
    assert members == {"reviewer", "reviewer2", "lead", "admin"}
