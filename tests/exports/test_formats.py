"""Every export format read back with a real reader; bytes independent of chunking and path."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
from label_studio_sdk.label_interface import LabelInterface

from labeling.exports import formats
from labeling.exports.jobs import export_stream
from labeling.exports.rows import FIELDS, snapshot_rows
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.labelstudio.labelconfig import label_config_for
from reviewapp.audit import SYSTEM

TRICKY = [
    'He said "no", then left;\nnew line, tab\there',
    "مرحبا \u202eevil\u202c 👋🏽 zero\u200bwidth",
    "control \x01 char and backslash \\ and 'quotes'",
    "",
]


@pytest.fixture
def snapshot(hate, spam, make_gold):  # type: ignore[no-untyped-def]
    for n, text in enumerate(TRICKY):
        make_gold(
            hate,
            ["violating" if n % 2 else "not_violating"],
            text=text,
            title=f"title {n}",
            media_urls=["https://media.example.com/a.jpg"] if n == 3 else [],
            context=[{"author": "u1", "text": 'earlier, "quoted" turn', "ts": n}] if n < 2 else [],
            route="audit_sample" if n == 1 else "low_confidence",
            propensity=0.05 if n == 1 else 1.0,
        )
    make_gold(spam, ["violating"], text="buy now")
    dataset = dataset_create(slug="mixed", name="Mixed", filters=SnapshotFilter(), actor=SYSTEM)
    return snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)


def export(snapshot, fmt: str, **options) -> bytes:  # type: ignore[no-untyped-def]
    return b"".join(export_stream(snapshot.pk, fmt, **options))


def test_jsonl_reads_back_with_json(snapshot) -> None:
    expected = list(snapshot_rows(snapshot))
    lines = export(snapshot, "jsonl").decode().splitlines()
    assert [json.loads(line) for line in lines] == expected
    assert all(list(json.loads(line)) == sorted(FIELDS) for line in lines)  # keys sorted


def test_csv_reads_back_with_csv(snapshot) -> None:
    expected = list(snapshot_rows(snapshot))
    reader = csv.DictReader(io.StringIO(export(snapshot, "csv").decode(), newline=""))
    assert reader.fieldnames == list(FIELDS)
    got = list(reader)
    assert len(got) == len(expected)
    for row, want in zip(got, expected, strict=True):
        assert row["text"] == want["text"] and row["external_id"] == want["external_id"]
        assert json.loads(row["labels"]) == want["labels"] and json.loads(row["context"]) == want["context"]
        assert float(row["sampling_propensity"]) == want["sampling_propensity"]
        assert row["adjudicator"] == "" and want["adjudicator"] is None


def test_parquet_reads_back_with_pyarrow(snapshot) -> None:
    table = pq.read_table(io.BytesIO(export(snapshot, "parquet")))
    assert table.column_names == list(FIELDS)
    rows = table.to_pylist()
    for row in rows:
        row["context"] = json.loads(row["context"])
    assert rows == list(snapshot_rows(snapshot))


def test_parquet_streams_row_groups_and_stays_byte_stable(snapshot, monkeypatch, settings) -> None:
    monkeypatch.setattr(formats, "PARQUET_ROW_GROUP_ROWS", 2)
    settings.EXPORT_CHUNK_ROWS = 3
    small_chunks = list(export_stream(snapshot.pk, "parquet"))
    settings.EXPORT_CHUNK_ROWS = 5000
    data = export(snapshot, "parquet")
    assert b"".join(small_chunks) == data
    assert len(small_chunks) >= 3  # row groups went out before the footer
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 3


def test_label_studio_tasks_parse_with_the_sdk(snapshot, hate, spam) -> None:
    tasks = json.loads(export(snapshot, "label-studio"))
    interfaces = {policy.key: LabelInterface(label_config_for(policy.current_version())) for policy in (hate, spam)}
    assert len(tasks) == snapshot.row_count
    for task, row in zip(tasks, snapshot_rows(snapshot), strict=True):
        interface = interfaces[task["meta"]["policy"]]
        assert task["data"]["text"] == row["text"] and task["meta"]["gold_label_id"] == row["gold_label_id"]
        assert task["meta"]["sampling_propensity"] == row["sampling_propensity"] and "labels" not in task["meta"]
        assert all(task["data"].get(tag.value_name) is not None for tag in interface.objects)
        (annotation,) = task["annotations"]
        assert interface.validate_annotation(annotation), annotation
        assert annotation["ground_truth"] and annotation["result"][0]["value"]["choices"] == row["labels"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "csv-excel", "parquet", "label-studio"])
def test_bytes_do_not_depend_on_chunk_size(snapshot, settings, fmt: str) -> None:
    settings.EXPORT_CHUNK_ROWS = 2
    small = export(snapshot, fmt)
    settings.EXPORT_CHUNK_ROWS = 5000
    assert export(snapshot, fmt) == small


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet", "label-studio"])
def test_split_export_holds_that_split_only(snapshot, fmt: str) -> None:
    for split in ("train", "dev", "test"):
        expected = [row for row in snapshot_rows(snapshot) if row["split"] == split]
        assert list(snapshot_rows(snapshot, split)) == expected
    data = export(snapshot, "jsonl", split="train")
    assert all(json.loads(line)["split"] == "train" for line in data.splitlines())


def test_empty_split_exports_are_well_formed(hate, make_gold) -> None:
    make_gold(hate)
    dataset = dataset_create(
        slug="all-train", name="All train", filters=SnapshotFilter(), actor=SYSTEM, train_percent=100, dev_percent=0
    )
    snapshot = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    assert snapshot.stats["splits"] == {"train": 1}
    assert export(snapshot, "jsonl", split="test") == b""
    assert json.loads(export(snapshot, "label-studio", split="test")) == []
    assert export(snapshot, "csv", split="test").decode().splitlines() == [",".join(FIELDS)]
    assert export(snapshot, "csv-excel", split="test").decode().splitlines() == [",".join(FIELDS)]
    assert pq.read_table(io.BytesIO(export(snapshot, "parquet", split="test"))).num_rows == 0


def test_redacted_export_without_pii_is_the_unredacted_bytes(hate, make_gold) -> None:
    make_gold(hate, text="nothing personal here", context=[{"author": "u1", "text": "fine", "ts": 1}])
    dataset = dataset_create(slug="clean", name="Clean", filters=SnapshotFilter(), actor=SYSTEM)
    clean = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    assert export(clean, "jsonl", redact_pii=True) == export(clean, "jsonl")


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "csv-excel", "parquet", "label-studio"])
def test_redaction_applies_to_text_title_and_context(hate, make_gold, fmt: str) -> None:
    make_gold(
        hate,
        text="mail jo@example.com or call +44 20 7946 0958",
        title="@jo's page https://example.com/jo",
        context=[{"author": "@jo", "text": "see www.example.org/x"}],
    )
    dataset = dataset_create(slug="pii", name="PII", filters=SnapshotFilter(), actor=SYSTEM)
    snapshot = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    redacted = export(snapshot, fmt, redact_pii=True)
    plain = export(snapshot, fmt)
    if fmt != "parquet":  # compressed
        for secret in (b"jo@example.com", b"7946", b"https://example.com/jo", b"www.example.org", b"@jo"):
            assert secret not in redacted and secret in plain
    (row,) = snapshot_rows(snapshot, redact_pii=True)
    assert row["text"] == "mail [EMAIL] or call [PHONE]"
    assert row["title"] == "[HANDLE]'s page [URL]"
    assert row["context"] == [{"author": "[HANDLE]", "text": "see [URL]"}]
