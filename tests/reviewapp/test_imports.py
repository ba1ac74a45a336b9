"""items_import: dataset records become items and backfill tasks, idempotently, with audit events."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import pytest
from django.utils import timezone

from labeling.datasets import AnnotatorLabel, DatasetRecord, read_toxic_spans
from labeling.models import Policy
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ContentItem, Queue, ReviewTask, TaskReason, TaskStatus
from reviewapp.services.imports import items_import
from tests.factories import PolicyFactory, QueueFactory


def record(external_id: str, text: str = "you are a clown", **changes: Any) -> DatasetRecord:
    base = DatasetRecord(
        source="toxic-spans",
        external_id=external_id,
        text=text,
        context=[],
        metadata={"dataset": "toxic-spans", "language": "en"},
        annotations=[],
        label=None,
    )
    return dataclasses.replace(base, **changes)


def counts() -> tuple[int, int, int]:
    return ContentItem.objects.count(), ReviewTask.objects.count(), AuditEvent.objects.count()


@pytest.mark.django_db
class TestImport:
    def test_import_creates_items_and_backfill_tasks_in_the_queue(self, policy, queue) -> None:
        result = items_import(records=[record("1"), record("2")], policy=policy, queue=queue, actor=SYSTEM)
        assert (result.items_created, result.items_existing, result.tasks_created) == (2, 0, 2)
        tasks = ReviewTask.objects.all()
        assert {(t.queue_id, t.policy_id, t.reason, t.status, t.decision_id) for t in tasks} == {
            (queue.pk, policy.pk, TaskReason.BACKFILL, TaskStatus.OPEN, None)
        }
        # Score 0.5 is full uncertainty; reach 0 adds nothing: priority is the policy's severity.
        assert {t.priority for t in tasks} == {policy.severity_weight}
        assert all(119 <= (t.due_at - t.created_at).total_seconds() / 60 <= 121 for t in tasks)

    def test_reimport_creates_nothing(self, policy, queue) -> None:
        records = [record(str(n)) for n in range(5)]
        items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        before = counts()
        again = items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        assert counts() == before
        assert (again.items_created, again.items_existing, again.tasks_created) == (0, 5, 0)

    def test_reimport_after_tasks_were_completed_opens_no_new_tasks(self, policy, queue) -> None:
        records = [record("1"), record("2")]
        items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        ReviewTask.objects.update(status=TaskStatus.COMPLETED, completed_at=timezone.now())
        again = items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        assert again.tasks_created == 0
        assert not ReviewTask.objects.filter(status=TaskStatus.OPEN).exists()

    def test_existing_items_get_tasks_under_another_policy(self, policy, queue) -> None:
        records = [record("1"), record("2")]
        items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        other_policy = cast(Policy, PolicyFactory(key="toxicity"))
        other_queue = cast(Queue, QueueFactory(slug="toxicity-review"))
        result = items_import(records=records, policy=other_policy, queue=other_queue, actor=SYSTEM)
        assert (result.items_created, result.items_existing, result.tasks_created) == (0, 2, 2)
        assert ReviewTask.objects.filter(queue=other_queue, policy=other_policy).count() == 2

    def test_tasks_use_the_given_reason(self, policy, queue) -> None:
        items_import(records=[record("1")], policy=policy, queue=queue, actor=SYSTEM, reason=TaskReason.ACTIVE_LEARNING)
        assert ReviewTask.objects.get().reason == TaskReason.ACTIVE_LEARNING

    def test_invalid_records_are_reported_and_the_rest_stored(self, policy, queue) -> None:
        records = [
            record("ok-1"),
            record("nul", text="bad\x00text"),
            record("x" * 300),
            record("ctx", context=[{"who": "agent", "text": "hi"}]),
            record("ok-2"),
        ]
        result = items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        assert result.items_created == 2 and result.tasks_created == 2
        assert [(external_id[:5], message.split(":")[0]) for external_id, message in result.invalid] == [
            ("nul", "text"),
            ("xxxxx", "external_id"),
            ("ctx", "context"),
        ]
        assert set(ContentItem.objects.values_list("external_id", flat=True)) == {"ok-1", "ok-2"}

    def test_duplicate_ids_within_one_import_keep_the_first(self, policy, queue) -> None:
        result = items_import(
            records=[record("1", text="first"), record("1", text="second")], policy=policy, queue=queue, actor=SYSTEM
        )
        assert result.items_created == 1
        assert result.invalid == [("1", "duplicate external_id in this import; the first record is kept")]
        assert ContentItem.objects.get().text == "first"

    def test_crowd_labels_are_kept_compactly_in_metadata(self, policy, queue) -> None:
        annotations = [
            AnnotatorLabel(
                "w1", "toxic", spans=[{"start": 10, "end": 15, "label": "Insult"}], extra={"country": "USA"}
            ),
            AnnotatorLabel("w2", "abusive", severity="mild"),
            AnnotatorLabel("w2", "abusive", severity="strong", extra={"repeat": True}),
        ]
        items_import(
            records=[record("1", annotations=annotations, label="toxic")], policy=policy, queue=queue, actor=SYSTEM
        )
        metadata = ContentItem.objects.get().metadata
        assert metadata["source_label"] == "toxic"
        assert metadata["source_annotations"] == [
            {"annotator": "w1", "label": "toxic", "spans": [{"start": 10, "end": 15, "label": "Insult"}]},
            {"annotator": "w2", "label": "abusive", "severity": "mild"},
            {"annotator": "w2", "label": "abusive", "severity": "strong", "repeat": True},
        ]
        assert metadata["dataset"] == "toxic-spans"

    def test_unlabeled_record_has_no_source_label(self, policy, queue) -> None:
        items_import(records=[record("1")], policy=policy, queue=queue, actor=SYSTEM)
        assert "source_label" not in ContentItem.objects.get().metadata

    def test_audit_has_one_event_per_task_and_one_summary(self, policy, queue) -> None:
        result = items_import(
            records=[record("1"), record("2"), record("bad", text="\x00")], policy=policy, queue=queue, actor=SYSTEM
        )
        created = AuditEvent.objects.filter(action="task.created")
        assert created.count() == 2
        assert {e.item_id for e in created} == set(ContentItem.objects.values_list("id", flat=True))
        assert all((e.after or {}).get("reason") == "backfill" for e in created)
        assert all((e.after or {}).get("queue_id") == queue.pk for e in created)
        summary = AuditEvent.objects.get(action="import.completed")
        assert (summary.object_type, summary.object_id, summary.actor_label) == ("import", result.import_id, "system")
        assert summary.after == {
            "policy": policy.key,
            "queue": queue.slug,
            "reason": "backfill",
            "items_created": 2,
            "items_existing": 0,
            "tasks_created": 2,
            "invalid": 1,
        }

    def test_import_larger_than_one_chunk(self, policy, queue) -> None:
        records = (record(str(n), text=f"comment number {n}") for n in range(2_345))
        result = items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
        assert (result.items_created, result.tasks_created) == (2_345, 2_345)
        assert ReviewTask.objects.filter(queue=queue).count() == 2_345


@pytest.mark.django_db
def test_real_toxic_spans_records_keep_spans_and_majority(toxic_spans_dir: Path, policy, queue) -> None:
    records = list(read_toxic_spans(toxic_spans_dir, limit=100))
    result = items_import(records=records, policy=policy, queue=queue, actor=SYSTEM)
    assert result.items_created == 100 and not result.invalid
    item = ContentItem.objects.get(source="toxic-spans", external_id=records[1].external_id)
    assert len(item.metadata["source_annotations"]) == len(records[1].annotations)
    assert item.metadata.get("source_label") == records[1].label
    assert any("spans" in a for a in item.metadata["source_annotations"])
