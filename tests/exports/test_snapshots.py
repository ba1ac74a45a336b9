"""Snapshots: frozen membership, current labels only, filters, statistics, versions, diffs."""

from __future__ import annotations

import hashlib

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.utils import InternalError, ProgrammingError

from labeling.exports.jobs import export_stream
from labeling.exports.models import DatasetSnapshot, DatasetSnapshotRow
from labeling.exports.rows import snapshot_rows
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create, snapshot_diff
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent


def make_dataset(slug: str = "hate-en", **filters):  # type: ignore[no-untyped-def]
    return dataset_create(slug=slug, name=slug, filters=SnapshotFilter.from_json(filters), actor=SYSTEM)


def build(dataset, **filters):  # type: ignore[no-untyped-def]
    chosen = SnapshotFilter.from_json(filters) if filters else SnapshotFilter.from_json(dataset.filters)
    return snapshot_create(dataset_id=dataset.pk, filters=chosen, actor=SYSTEM)


def jsonl_bytes(snapshot: DatasetSnapshot) -> bytes:
    return b"".join(export_stream(snapshot.pk, "jsonl"))


def test_snapshot_freezes_current_gold_with_provenance(hate, make_gold, django_user_model) -> None:
    lead = django_user_model.objects.create_user("lead")
    first = make_gold(hate, ["not_violating"], route="audit_sample", propensity=0.05, adjudicator=lead)
    relabelled = make_gold(hate, ["violating"], item=first.item, source="adjudication", adjudicator=lead)
    other = make_gold(hate, ["violating"], text="second")
    snapshot = build(make_dataset())

    rows = list(snapshot_rows(snapshot))
    assert snapshot.version == 1 and snapshot.row_count == 2 == len(rows)
    assert [row["gold_label_id"] for row in rows] == [relabelled.pk, other.pk]
    row = rows[0]
    assert row["labels"] == ["violating"] and row["label_source"] == "adjudication" and row["gold_version"] == 2
    assert row["policy"] == "hate" and row["policy_version"] == 1 and row["adjudicator"] == "lead"
    assert row["item_id"] == first.item_id and row["external_id"] == first.item.external_id
    assert row["split"] in ("train", "dev", "test") and row["created_at"].endswith("Z")
    assert AuditEvent.objects.filter(action="snapshot.created", object_id=str(snapshot.pk)).exists()


def test_route_and_propensity_come_from_the_task(hate, make_gold) -> None:
    make_gold(hate, route="audit_sample", propensity=0.05)
    (row,) = snapshot_rows(build(make_dataset()))
    assert row["route"] == "audit_sample" and row["sampling_propensity"] == 0.05


def test_content_hash_is_sha256_of_canonical_jsonl(hate, make_gold) -> None:
    for n in range(3):
        make_gold(hate, text=f"text {n}")
    snapshot = build(make_dataset())
    assert snapshot.content_hash == hashlib.sha256(jsonl_bytes(snapshot)).hexdigest()


def test_old_version_exports_same_bytes_after_gold_changes(hate, make_gold) -> None:
    golds = [make_gold(hate, text=f"text {n}") for n in range(4)]
    dataset = make_dataset()
    v1 = build(dataset)
    before = jsonl_bytes(v1)
    make_gold(hate, ["not_violating"], item=golds[0].item, source="appeal")  # a correction
    make_gold(hate, text="new item")
    v2 = build(dataset)

    assert jsonl_bytes(v1) == before
    assert hashlib.sha256(before).hexdigest() == DatasetSnapshot.objects.get(pk=v1.pk).content_hash
    assert (v2.version, v2.row_count) == (2, 5) and v2.content_hash != v1.content_hash


@pytest.mark.parametrize("statement", ["UPDATE {table} SET {column} = {column}", "DELETE FROM {table}"])
@pytest.mark.parametrize(
    ("table", "column"), [("exports_datasetsnapshot", "row_count"), ("exports_datasetsnapshotrow", "split")]
)
def test_database_refuses_changes_to_snapshots(hate, make_gold, statement: str, table: str, column: str) -> None:
    make_gold(hate)
    build(make_dataset())
    with (
        pytest.raises((InternalError, ProgrammingError), match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement.format(table=table, column=column))


def test_orm_cannot_edit_a_snapshot(hate, make_gold) -> None:
    make_gold(hate)
    snapshot = build(make_dataset())
    snapshot.row_count = 99
    with pytest.raises((InternalError, ProgrammingError)), transaction.atomic():
        snapshot.save()
    assert DatasetSnapshotRow.objects.filter(snapshot=snapshot).count() == 1


def test_filters_select_policies_languages_routes_sources_and_dates(hate, spam, make_gold) -> None:
    keep = make_gold(hate, route="low_confidence", source="adjudication")
    make_gold(spam, route="low_confidence", source="adjudication")  # other policy
    make_gold(hate, language="de", route="low_confidence", source="adjudication")  # other language
    make_gold(hate, route="audit_sample", source="adjudication")  # other route
    make_gold(hate, route="low_confidence", source="honeypot")  # other source
    dataset = make_dataset(
        policies=["hate"], languages=["en"], routes=["low_confidence"], label_sources=["adjudication"]
    )
    today = keep.created_at.date().isoformat()

    assert [r["gold_label_id"] for r in snapshot_rows(build(dataset))] == [keep.pk]
    assert build(dataset, date_from=today, date_to=today).row_count == 5
    with pytest.raises(ValidationError, match="No gold labels"):
        build(dataset, date_to="2000-01-01")


def test_filter_is_validated(hate) -> None:
    for bad, message in (
        ({"policies": ["nope"]}, "unknown policies"),
        ({"colour": ["red"]}, "unknown filter keys"),
        ({"label_sources": ["guess"]}, "unknown label sources"),
        ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "after"),
        ({"languages": "en"}, "list"),
    ):
        with pytest.raises(ValidationError, match=message):
            SnapshotFilter.from_json(bad)


def test_statistics_per_split_and_label_source(hate, spam, make_gold) -> None:
    for n in range(6):
        make_gold(hate, ["violating" if n % 3 else "not_violating"], source="adjudication" if n < 2 else "consensus")
    make_gold(spam, ["violating"])
    stats = build(make_dataset()).stats
    assert sum(stats["splits"].values()) == 7
    balance: dict[str, int] = {}
    for per_split in stats["class_balance"].values():
        for key, count in per_split.items():
            balance[key] = balance.get(key, 0) + count
    assert balance == {"hate:not_violating": 2, "hate:violating": 4, "spam:violating": 1}
    sources: dict[str, int] = {}
    for per_split in stats["label_sources"].values():
        for key, count in per_split.items():
            sources[key] = sources.get(key, 0) + count
    assert sources == {"adjudication": 2, "consensus": 5}
    assert stats["policy_versions"] == [
        {"policy": "hate", "version": 1, "rows": 6},
        {"policy": "spam", "version": 1, "rows": 1},
    ]


def test_diff_counts_and_rows(hate, make_gold) -> None:
    kept, relabelled, reconfirmed, removed = (make_gold(hate, text=f"t{n}") for n in range(4))
    dataset = make_dataset(label_sources=["consensus", "adjudication"])
    v1 = build(dataset)
    make_gold(hate, ["not_violating"], item=relabelled.item, source="adjudication")
    make_gold(hate, ["violating"], item=reconfirmed.item, source="adjudication")
    make_gold(hate, ["not_violating"], item=removed.item, source="appeal")  # filtered out from now on
    added = make_gold(hate, text="new")
    v2 = build(dataset)

    assert v2.stats["diff_previous"] == {"added": 1, "removed": 1, "relabelled": 1, "updated": 1}
    page = snapshot_diff(v2, v1, limit=10)
    changes = {(row["item_id"], row["change"]) for row in page.rows}
    assert changes == {
        (added.item_id, "added"),
        (removed.item_id, "removed"),
        (relabelled.item_id, "relabelled"),
        (reconfirmed.item_id, "updated"),
    }
    relabel = next(row for row in page.rows if row["change"] == "relabelled")
    assert relabel["old_labels"] == ["violating"] and relabel["new_labels"] == ["not_violating"]
    first = snapshot_diff(v2, v1, limit=2)
    second = snapshot_diff(v2, v1, limit=2, after=first.next_after)
    assert [r["item_id"] for r in first.rows + second.rows] == sorted(item for item, _ in changes)
    assert second.next_after is None and kept.item_id not in {r["item_id"] for r in page.rows}


def test_empty_snapshot_is_refused_and_leaves_nothing(hate) -> None:
    dataset = make_dataset()
    with pytest.raises(ValidationError):
        build(dataset)
    assert not DatasetSnapshot.objects.exists() and not DatasetSnapshotRow.objects.exists()
