"""Objects behind the dataset URLs, for the role matrix in tests/test_permissions.py."""

from __future__ import annotations

from labeling.exports.models import ExportJob, SnapshotBuild
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from reviewapp.audit import SYSTEM


def export_world() -> dict[str, object]:
    """A dataset with one version, a build and an export job; URL kwargs for them (needs gold labels)."""
    dataset = dataset_create(slug="world", name="World", filters=SnapshotFilter(), actor=SYSTEM)
    snapshot = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    build = SnapshotBuild.objects.create(dataset=dataset, filters={}, rows_expected=1, requested_by_label="test")
    job = ExportJob.objects.create(snapshot=snapshot, format="jsonl", rows_total=1, requested_by_label="test")
    return {"slug": dataset.slug, "version": snapshot.version, "build_id": build.pk, "job_id": job.pk}
