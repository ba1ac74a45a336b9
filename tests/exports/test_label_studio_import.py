"""The Label Studio export imports into a real Label Studio server (the interop tests' harness)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from labeling.exports.jobs import export_stream
from labeling.exports.rows import snapshot_rows
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.labelstudio.labelconfig import label_config_for
from reviewapp.audit import SYSTEM

# Label Studio tier: starts a real Label Studio server.
pytestmark = pytest.mark.labelstudio

server = pytest.importorskip("tests.labelstudio.server", reason="needs the Label Studio test harness")


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory) -> Iterator:  # type: ignore[type-arg]
    with server.running_label_studio(tmp_path_factory.mktemp("label-studio-export")) as running:
        yield running


def test_export_imports_as_ground_truth_tasks(label_studio, hate, make_gold) -> None:
    from label_studio_sdk import LabelStudio

    make_gold(hate, ["violating"], text="first <b>gold</b>", context=[{"author": "u1", "text": "before"}])
    make_gold(hate, ["not_violating"], text="second gold", route="audit_sample", propensity=0.05)
    dataset = dataset_create(slug="ls", name="LS", filters=SnapshotFilter(), actor=SYSTEM)
    snapshot = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    tasks = json.loads(b"".join(export_stream(snapshot.pk, "label-studio")))

    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = client.projects.create(title="gold export", label_config=label_config_for(hate.current_version()))
    assert project.id is not None
    client.projects.import_tasks(id=project.id, request=tasks)

    imported: list = sorted(
        client.tasks.list(project=project.id, fields="all"), key=lambda task: task.data["external_id"]
    )
    rows = sorted(snapshot_rows(snapshot), key=lambda row: row["external_id"])
    assert [task.data["text"] for task in imported] == [row["text"] for row in rows]
    for task, row in zip(imported, rows, strict=True):
        (annotation,) = task.annotations
        assert annotation["result"][0]["value"]["choices"] == row["labels"] and annotation["ground_truth"]
        assert task.meta["gold_label_id"] == row["gold_label_id"] and task.meta["route"] == row["route"]
