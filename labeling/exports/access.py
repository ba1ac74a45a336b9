"""Fetch helpers for pages and the API: the object or 404 (ids beyond the column's range too)."""

from __future__ import annotations

from django.http import Http404

from .models import Dataset, DatasetSnapshot, ExportJob, SnapshotBuild

MAX_INT = 2**31 - 1  # `version` is an integer column; ids are bigint but never that large here


def _checked(value: int) -> int:
    if not 0 < value <= MAX_INT:
        raise Http404("No such object.")
    return value


def access_dataset(slug: str) -> Dataset:
    dataset = Dataset.objects.filter(slug=slug).first()
    if dataset is None:
        raise Http404("No such dataset.")
    return dataset


def access_snapshot(slug: str, version: int) -> DatasetSnapshot:
    snapshot = (
        DatasetSnapshot.objects.select_related("dataset").filter(dataset__slug=slug, version=_checked(version)).first()
    )
    if snapshot is None:
        raise Http404("No such dataset version.")
    return snapshot


def access_build(slug: str, build_id: int) -> SnapshotBuild:
    build = (
        SnapshotBuild.objects.select_related("dataset", "snapshot")
        .filter(dataset__slug=slug, pk=_checked(build_id))
        .first()
    )
    if build is None:
        raise Http404("No such build.")
    return build


def access_export_job(job_id: int) -> ExportJob:
    job = ExportJob.objects.select_related("snapshot__dataset").filter(pk=_checked(job_id)).first()
    if job is None:
        raise Http404("No such export.")
    return job
