"""Lead pages for gold datasets: list, create, versions with charts and diffs, downloads.

Background builds and exports show a status fragment that polls itself with htmx every two
seconds while work is in progress (and works as a plain page without htmx).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, OuterRef, Q, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from labeling.models import GoldSource, Policy
from reviewapp.access import lead_required
from reviewapp.audit import Actor
from reviewapp.charts import Bar, bar_chart

from .access import access_build, access_dataset, access_export_job, access_snapshot
from .forms import DatasetForm, DownloadForm
from .jobs import export_file_ready, export_request, rows_in
from .models import Dataset, DatasetSnapshot, ExportJob, JobStatus, SnapshotBuild, Split
from .responses import file_download, streaming_export
from .snapshots import SnapshotFilter, dataset_start, snapshot_diff, snapshot_request
from .splits import split_definition

DIFF_ROWS_SHOWN = 50
DATASET_FIELDS = ("slug", "name", "description", "group_by", "train_percent", "dev_percent", "redact_pii_default")


def _made_url(made: DatasetSnapshot | SnapshotBuild) -> str:
    if isinstance(made, SnapshotBuild):
        return reverse("dataset-build-status", args=[made.dataset.slug, made.pk])
    return reverse("dataset-version", args=[made.dataset.slug, made.version])


@require_GET
@lead_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    latest = DatasetSnapshot.objects.filter(dataset=OuterRef("pk")).order_by("-version")
    datasets = Dataset.objects.annotate(
        latest_version=Max("versions__version"),
        latest_rows=Subquery(latest.values("row_count")[:1]),
        latest_at=Subquery(latest.values("created_at")[:1]),
        building=Count("builds", distinct=True, filter=Q(builds__status__in=[JobStatus.QUEUED, JobStatus.RUNNING])),
    ).order_by("slug")
    return render(request, "exports/dataset_list.html", {"datasets": datasets})


@require_http_methods(["GET", "POST"])
@lead_required
def dataset_new(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            made = dataset_start(
                fields={name: data[name] for name in DATASET_FIELDS},
                filters=data["filters"],
                actor=Actor.of(request.user),
                requested_by=request.user,  # type: ignore[arg-type]
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Dataset {made.dataset.slug} created.")
            return redirect(_made_url(made))
    status = 400 if request.method == "POST" else 200
    return render(request, "exports/dataset_form.html", {"form": form}, status=status)


@require_GET
@lead_required
def dataset_detail(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(slug)
    context = {
        "dataset": dataset,
        "filters": SnapshotFilter.from_json(dataset.filters),
        "versions": dataset.versions.order_by("-version"),
        "builds": dataset.builds.exclude(status=JobStatus.DONE).order_by("-created_at")[:10],
        "split_definition": split_definition(
            salt=dataset.split_salt,
            group_by=dataset.group_by,
            train_percent=dataset.train_percent,
            dev_percent=dataset.dev_percent,
        ),
    }
    return render(request, "exports/dataset_detail.html", context)


@require_POST
@lead_required
def version_build(request: HttpRequest, slug: str) -> HttpResponse:
    dataset = access_dataset(slug)
    try:
        made = snapshot_request(
            dataset=dataset,
            filters=SnapshotFilter.from_json(dataset.filters),
            actor=Actor.of(request.user),
            requested_by=request.user,  # type: ignore[arg-type]
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("dataset-detail", slug)
    return redirect(_made_url(made))


@require_GET
@lead_required
def build_status(request: HttpRequest, slug: str, build_id: int) -> HttpResponse:
    build = access_build(slug, build_id)
    if request.htmx and build.snapshot is not None:  # type: ignore[attr-defined]
        return HttpResponseClientRedirect(_made_url(build.snapshot))
    template = "exports/build_status.html" + ("#status" if request.htmx else "")  # type: ignore[attr-defined]
    return render(request, template, {"build": build, "dataset": build.dataset})


@require_GET
@lead_required
def version_detail(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    snapshot = access_snapshot(slug, version)
    previous = snapshot.dataset.versions.filter(version__lt=snapshot.version).order_by("-version").first()
    context = {
        "snapshot": snapshot,
        "dataset": snapshot.dataset,
        "filters": SnapshotFilter.from_json(snapshot.filters),
        "previous": previous,
        "diff": snapshot_diff(snapshot, previous, limit=DIFF_ROWS_SHOWN) if previous else None,
        "download_form": DownloadForm(initial={"redact_pii": snapshot.dataset.redact_pii_default}),
        "background_form": DownloadForm(auto_id="bg-%s", initial={"redact_pii": snapshot.dataset.redact_pii_default}),
        "jobs": snapshot.export_jobs.order_by("-created_at"),
        "stream_max_rows": settings.EXPORT_STREAM_MAX_ROWS,
        **_charts(snapshot.stats),
    }
    return render(request, "exports/version_detail.html", context)


ROWS_AXIS = "share of rows, %"


def _share_bars(counts: dict[str, int]) -> list[Bar]:
    total = sum(counts.values()) or 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [Bar(label, count / total, note=f"({count:,} rows)") for label, count in ranked]


def _class_names(keys: set[str]) -> dict[str, str]:
    """`policy:label` keys of a version's class balance, as people read them ("Hate: Violating")."""
    policies = {p.key: p for p in Policy.objects.filter(key__in={key.partition(":")[0] for key in keys})}
    names = {}
    for key in keys:
        policy_key, _, value = key.partition(":")
        policy = policies.get(policy_key)
        version = policy.current_version() if policy else None
        names[key] = f"{policy.name}: {version.label_title(value) if version else value}" if policy else key
    return names


def _charts(stats: dict[str, Any]) -> dict[str, Any]:
    source_names = dict(GoldSource.choices)
    sources: dict[str, int] = {}
    for per_split in stats.get("label_sources", {}).values():
        for source, count in per_split.items():
            name = source_names.get(source, source)
            sources[name] = sources.get(name, 0) + count
    balance = stats.get("class_balance", {})
    names = _class_names({key for per_split in balance.values() for key in per_split})
    return {
        "split_chart": bar_chart(_share_bars(stats.get("splits", {})), title="Share of rows per split", axis=ROWS_AXIS),
        "class_charts": [
            (
                split,
                bar_chart(
                    _share_bars({names[key]: n for key, n in balance[split].items()}),
                    title=f"Class balance in {split}",
                    axis=ROWS_AXIS,
                ),
            )
            for split in Split.values
            if balance.get(split)
        ],
        "source_chart": bar_chart(_share_bars(sources), title="Label sources", axis=ROWS_AXIS),
    }


@require_GET
@lead_required
def version_download(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    """Stream the chosen export, or hand it to a background job when it is large."""
    snapshot = access_snapshot(slug, version)
    form = DownloadForm(request.GET)
    if not form.is_valid():
        messages.error(request, "Choose a format and a split.")
        return redirect("dataset-version", slug, version)
    fmt, split, redact = (
        form.cleaned_data["format"],
        form.cleaned_data["split"] or None,
        form.cleaned_data["redact_pii"],
    )
    if rows_in(snapshot, split) > settings.EXPORT_STREAM_MAX_ROWS:
        job = export_request(snapshot=snapshot, fmt=fmt, split=split, redact_pii=redact, actor=Actor.of(request.user))
        messages.info(request, "This export is large: it is being written in the background.")
        return redirect("dataset-export-status", job.pk)
    return streaming_export(snapshot, fmt, split, redact)  # type: ignore[return-value]  # streamed, not buffered


@require_POST
@lead_required
def export_start(request: HttpRequest, slug: str, version: int) -> HttpResponse:
    snapshot = access_snapshot(slug, version)
    form = DownloadForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a format and a split.")
        return redirect("dataset-version", slug, version)
    job = export_request(
        snapshot=snapshot,
        fmt=form.cleaned_data["format"],
        split=form.cleaned_data["split"] or None,
        redact_pii=form.cleaned_data["redact_pii"],
        actor=Actor.of(request.user),
    )
    return redirect("dataset-export-status", job.pk)


@require_GET
@lead_required
def export_status(request: HttpRequest, job_id: int) -> HttpResponse:
    job = access_export_job(job_id)
    if request.htmx:  # type: ignore[attr-defined]
        return render(request, "exports/partials/_export_job.html", {"job": job})
    return render(request, "exports/export_status.html", {"job": job, "snapshot": job.snapshot})


@require_GET
@lead_required
def export_download(request: HttpRequest, job_id: int) -> HttpResponse:
    job: ExportJob = access_export_job(job_id)
    path = export_file_ready(job)
    if path is None:
        messages.error(request, "This export is not ready, or its file expired: start it again.")
        return redirect("dataset-export-status", job.pk)
    return file_download(job, path)  # type: ignore[return-value]  # a FileResponse streams too
