"""The migration that brings content grouping leaves existing datasets' split rules alone."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from labeling.exports.models import Dataset, DatasetSnapshot
from labeling.exports.splits import split_definition

MIGRATION = "content_grouping_and_split_definition"


def test_existing_datasets_keep_their_rule_and_their_versions_record_it(transactional_db) -> None:
    executor = MigrationExecutor(connection)
    graph = executor.loader.graph
    (target,) = [key for key in graph.nodes if key[0] == "exports" and key[1].endswith(MIGRATION)]
    (before,) = [parent.key for parent in graph.node_map[target].parents if parent.key[0] == "exports"]
    leaves = executor.loader.graph.leaf_nodes()
    executor.migrate([before])
    old = executor.loader.project_state([before]).apps
    dataset = old.get_model("exports", "Dataset").objects.create(
        slug="old", name="Old", filters={}, group_by="", train_percent=70, dev_percent=20, split_salt="a1b2c3"
    )
    old.get_model("exports", "DatasetSnapshot").objects.create(
        dataset_id=dataset.pk, version=1, filters={}, row_count=0, content_hash="0" * 64, stats={}
    )
    executor = MigrationExecutor(connection)
    executor.migrate(leaves)

    kept = Dataset.objects.get(slug="old")
    assert (kept.group_by, kept.split_salt, kept.train_percent, kept.dev_percent) == ("", "a1b2c3", 70, 20)
    snapshot = DatasetSnapshot.objects.get(dataset=kept)
    expected = split_definition(salt="a1b2c3", group_by="", train_percent=70, dev_percent=20)
    assert {key: snapshot.split_definition[key] for key in expected} == expected
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        DatasetSnapshot.objects.filter(pk=snapshot.pk).update(row_count=1)  # the trigger is back on
