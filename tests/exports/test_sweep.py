"""The beat sweep re-sends lost work and prunes expired export files."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from labeling.exports import tasks
from labeling.exports.jobs import export_path, export_run
from labeling.exports.models import ExportJob, JobStatus, SnapshotBuild, WebhookDelivery
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.exports.webhooks import endpoint_create, event_emit
from reviewapp.audit import SYSTEM


def test_sweep_resends_stale_work_and_prunes_old_files(hate, make_gold, monkeypatch, settings) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    sent: list[tuple[str, int]] = []
    for name in ("build_snapshot", "export_file", "deliver_webhook"):
        monkeypatch.setattr(getattr(tasks, name), "delay", lambda pk, name=name: sent.append((name, pk)))
    make_gold(hate)
    dataset = dataset_create(slug="s", name="s", filters=SnapshotFilter(), actor=SYSTEM)
    snapshot = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    long_ago = timezone.now() - timedelta(hours=2)
    stale_build = SnapshotBuild.objects.create(dataset=dataset, filters={}, rows_expected=1, requested_by_label="t")
    SnapshotBuild.objects.filter(pk=stale_build.pk).update(created_at=long_ago)
    SnapshotBuild.objects.create(dataset=dataset, filters={}, rows_expected=1, requested_by_label="t")  # fresh
    stale_job = ExportJob.objects.create(snapshot=snapshot, format="csv", rows_total=1, requested_by_label="t")
    ExportJob.objects.filter(pk=stale_job.pk).update(queued_at=long_ago)
    endpoint_create(url="http://127.0.0.1:9/", events=["snapshot.ready"])
    (delivery_id,) = event_emit("snapshot.ready", {})
    WebhookDelivery.objects.filter(pk=delivery_id).update(created_at=long_ago)
    old = ExportJob.objects.create(snapshot=snapshot, format="jsonl", rows_total=1, requested_by_label="t")
    export_run(job_id=old.pk)
    ExportJob.objects.filter(pk=old.pk).update(
        finished_at=long_ago - timedelta(hours=settings.EXPORT_FILE_RETENTION_HOURS)
    )

    assert tasks.sweep() == {"builds": 1, "exports": 1, "deliveries": 1, "pruned": 1}
    assert sorted(sent) == sorted(
        [("build_snapshot", stale_build.pk), ("export_file", stale_job.pk), ("deliver_webhook", delivery_id)]
    )
    old.refresh_from_db()
    assert old.status == JobStatus.EXPIRED and not export_path(old).exists()
