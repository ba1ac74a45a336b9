"""REST endpoints for gold datasets: list and create datasets and versions, export, diff.

Service tokens only: `export:read` for GET, `export:write` for POST. Thin views: parse, call one
service, render.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC
from typing import Any

import django_filters
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Max, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import BaseParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviewapp.api.auth import HasScope, token_actor
from reviewapp.api.serializers import ErrorSerializer

from ..access import access_build, access_dataset, access_export_job, access_snapshot
from ..jobs import export_file_ready, export_request, rows_in
from ..models import Dataset, DatasetSnapshot, ExportJob, JobStatus, SnapshotBuild
from ..responses import file_download, streaming_export
from ..snapshots import SnapshotFilter, dataset_create, dataset_start, snapshot_diff, snapshot_request
from . import examples
from .serializers import (
    BuildSerializer,
    DatasetCreatedSerializer,
    DatasetCreateSerializer,
    DatasetSerializer,
    DiffQuerySerializer,
    DiffSerializer,
    ExportJobSerializer,
    ExportQuerySerializer,
    SnapshotSerializer,
    VersionCreateSerializer,
)

EXPORT_READ, EXPORT_WRITE = "export:read", "export:write"


class ExportScopes(APIView):
    """GET needs `export:read`, anything else `export:write` (checked by HasScope)."""

    permission_classes = [HasScope]

    @property
    def required_scope(self) -> str:
        return EXPORT_READ if self.request.method in SAFE_METHODS else EXPORT_WRITE


class DatasetCursor(CursorPagination):
    ordering = "slug"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class VersionCursor(DatasetCursor):
    ordering = "-version"


class _UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time converted to UTC; offsets the database cannot take are a 400, not a 500."""

    def clean(self, value: Any) -> Any:
        parsed = super().clean(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError):
            raise DjangoValidationError("Time out of range.") from None


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = _UtcIsoDateTimeField


class DatasetFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains", help_text="Part of the name.")
    policy = django_filters.CharFilter(method="filter_policy", help_text="Datasets whose saved filter names it.")
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Dataset
        fields = ["slug", "name", "policy", "created_after", "created_before"]

    def filter_policy(self, queryset: QuerySet[Dataset], name: str, value: str) -> QuerySet[Dataset]:
        return queryset.filter(filters__policies__contains=[value])


class VersionFilter(django_filters.FilterSet):
    created_after = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")
    min_rows = django_filters.NumberFilter(field_name="row_count", lookup_expr="gte")

    class Meta:
        model = DatasetSnapshot
        fields = ["content_hash", "created_after", "created_before", "min_rows"]


def _datasets() -> QuerySet[Dataset]:
    return Dataset.objects.annotate(latest_version=Max("versions__version"))


class DatasetListView(ExportScopes, generics.ListAPIView):
    """Gold datasets, by slug."""

    serializer_class = DatasetSerializer
    pagination_class = DatasetCursor
    filterset_class = DatasetFilter

    def get_queryset(self) -> QuerySet[Dataset]:
        return _datasets()

    @extend_schema(
        operation_id="datasets_list",
        summary="List datasets (cursor pagination; needs export:read)",
        examples=[examples.DATASET_PAGE],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="datasets_create",
        summary="Create a dataset (needs export:write)",
        description="A dataset names a saved filter and fixes its split shares, salt and group key for good. "
        "Its first version is built from that filter at once, as on the lead page: `first_version` when small, "
        "`first_build` (poll its `url`) when it goes to the background. 400, and no dataset, when no gold "
        "label matches. With `build: false` the dataset has no version until you POST to its versions.",
        request=DatasetCreateSerializer,
        responses={201: DatasetCreatedSerializer, 400: ErrorSerializer},
        examples=[examples.DATASET_CREATE, examples.DATASET],
    )
    def post(self, request: Request) -> Response:
        given = DatasetCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = dict(given.validated_data)
        filters = SnapshotFilter.from_json(data=_jsonable(data.pop("filters", None)))
        actor, build = token_actor(request), data.pop("build")
        user = request.user if getattr(request.user, "pk", None) else None
        if build:  # the same service as the lead page's Create: the dataset and its first version
            made = dataset_start(fields=data, filters=filters, actor=actor, requested_by=user)
            dataset = made.dataset
        else:
            made, dataset = None, dataset_create(filters=filters, actor=actor, **data)
        created = _datasets().get(pk=dataset.pk)
        created.first_version = made if isinstance(made, DatasetSnapshot) else None  # type: ignore[attr-defined]
        created.first_build = made if isinstance(made, SnapshotBuild) else None  # type: ignore[attr-defined]
        return Response(DatasetCreatedSerializer(created).data, status=status.HTTP_201_CREATED)


_FIXED_DATASET = (
    "A dataset's split rule (group_by, split_salt, train/dev shares) decides what its held-out splits mean "
    "and is fixed for good, so that no version changes meaning silently. To split another way, create a new "
    "dataset (POST /api/v1/datasets/ with a new slug); pass a filter when building a version to change what it "
    "takes."
)


class DatasetDetailView(ExportScopes):
    @extend_schema(
        operation_id="datasets_retrieve",
        summary="One dataset: its saved filter, split settings and latest version",
        responses={200: DatasetSerializer, 404: ErrorSerializer},
        examples=[examples.DATASET],
    )
    def get(self, request: Request, slug: str) -> Response:
        dataset = _datasets().filter(slug=slug).first()
        if dataset is None:
            raise NotFound("No such dataset.")
        return Response(DatasetSerializer(dataset).data)

    @extend_schema(
        operation_id="datasets_update",
        summary="Refused: a dataset never changes (409)",
        description=_FIXED_DATASET,
        request=None,
        responses={409: ErrorSerializer, 404: ErrorSerializer},
    )
    def patch(self, request: Request, slug: str) -> Response:
        access_dataset(slug)
        return Response({"detail": _FIXED_DATASET}, status=status.HTTP_409_CONFLICT)

    @extend_schema(
        operation_id="datasets_replace",
        summary="Refused: a dataset never changes (409)",
        description=_FIXED_DATASET,
        request=None,
        responses={409: ErrorSerializer, 404: ErrorSerializer},
    )
    def put(self, request: Request, slug: str) -> Response:
        return self.patch(request, slug)


class VersionListView(ExportScopes, generics.ListAPIView):
    """Versions of one dataset, newest first."""

    serializer_class = SnapshotSerializer
    pagination_class = VersionCursor
    filterset_class = VersionFilter

    def get_queryset(self) -> QuerySet[DatasetSnapshot]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no URL arguments
            return DatasetSnapshot.objects.none()
        dataset = access_dataset(self.kwargs["slug"])
        return DatasetSnapshot.objects.filter(dataset=dataset).select_related("dataset")

    @extend_schema(
        operation_id="dataset_versions_list",
        summary="List a dataset's versions (cursor pagination; needs export:read)",
        responses={200: SnapshotSerializer(many=True), 404: ErrorSerializer},
        examples=[examples.VERSION_PAGE],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="dataset_versions_create",
        summary="Build a new version (needs export:write)",
        description="Freezes the current gold labels that match the filter (the dataset's saved one unless "
        "given). Small versions are built at once (201 with the version); larger ones "
        f"(over REVIEWAPP_SNAPSHOT_SYNC_MAX_ROWS, default {settings.SNAPSHOT_SYNC_MAX_ROWS}) are built "
        "in the background (202 with a build to poll; its `version_url` is set when done). 400 when no "
        "gold label matches.",
        request=VersionCreateSerializer,
        responses={201: SnapshotSerializer, 202: BuildSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
        examples=[examples.VERSION_CREATE, examples.VERSION, examples.BUILD],
    )
    def post(self, request: Request, slug: str) -> Response:
        dataset = access_dataset(slug)
        given = VersionCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        raw = _jsonable(given.validated_data["filters"]) if "filters" in given.validated_data else dataset.filters
        filters = SnapshotFilter.from_json(data=raw)
        user = request.user if getattr(request.user, "pk", None) else None
        made = snapshot_request(dataset=dataset, filters=filters, actor=token_actor(request), requested_by=user)
        if isinstance(made, SnapshotBuild):
            body = BuildSerializer(made).data
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})
        body = SnapshotSerializer(made).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class VersionDetailView(ExportScopes):
    @extend_schema(
        operation_id="dataset_versions_retrieve",
        summary="One version: size, hash, filter, split and label statistics",
        responses={200: SnapshotSerializer, 404: ErrorSerializer},
        examples=[examples.VERSION],
    )
    def get(self, request: Request, slug: str, version: int) -> Response:
        return Response(SnapshotSerializer(access_snapshot(slug, version)).data)


class BuildDetailView(ExportScopes):
    @extend_schema(
        operation_id="dataset_builds_retrieve",
        summary="A background version build: status, and the version when done",
        responses={200: BuildSerializer, 404: ErrorSerializer},
        examples=[examples.BUILD],
    )
    def get(self, request: Request, slug: str, build_id: int) -> Response:
        return Response(BuildSerializer(access_build(slug, build_id)).data)


class IgnoreFormatParameter(BaseContentNegotiation):
    """JSON for every non-file response: `format` here names the export format, not a renderer."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


# An export's bytes, by format: the streamed response and the background job's file are the same.
FILE_RESPONSES = {
    (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="JSON Lines"),
    (200, "text/csv"): OpenApiResponse(
        OpenApiTypes.STR,
        description="CSV with a header row: `csv` holds exact values; `csv-excel` prefixes `'` to text cells "
        "starting with = + - @ tab or CR, so a spreadsheet shows them instead of running them as formulas",
    ),
    (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY, description="Parquet"),
    (200, "application/json"): OpenApiResponse(
        {"type": "array", "items": {"type": "object"}}, description="Label Studio tasks (a JSON array)"
    ),
}


class ExportView(ExportScopes):
    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(
        operation_id="dataset_versions_export",
        summary="Export a version as JSONL, CSV, Parquet or Label Studio JSON (needs export:read)",
        description=(
            "Streams the rows in canonical order (item id, then policy key) with constant memory. Above "
            f"REVIEWAPP_EXPORT_STREAM_MAX_ROWS rows (default {settings.EXPORT_STREAM_MAX_ROWS:,}), or with "
            "`background=true`, the export is written to a file by a background job instead: 202 with the "
            "job, whose `download_url` is set when done. Both give the same bytes. The JSONL export of every "
            "split, unredacted, hashes to the version's `content_hash`."
        ),
        parameters=[
            ExportQuerySerializer,
        ],
        responses={
            **FILE_RESPONSES,
            202: ExportJobSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
        },
        examples=[examples.EXPORT_JOB],
    )
    def get(self, request: Request, slug: str, version: int) -> Any:
        snapshot = access_snapshot(slug, version)
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        fmt, split = query.validated_data["format"], query.validated_data.get("split")
        redact = query.validated_data["redact_pii"]
        redact = snapshot.dataset.redact_pii_default if redact is None else redact
        if query.validated_data["background"] or rows_in(snapshot, split) > settings.EXPORT_STREAM_MAX_ROWS:
            job = export_request(snapshot=snapshot, fmt=fmt, split=split, redact_pii=redact, actor=token_actor(request))
            body = ExportJobSerializer(job).data
            return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})
        return streaming_export(snapshot, fmt, split, redact)


class ExportJobView(ExportScopes):
    @extend_schema(
        operation_id="exports_retrieve",
        summary="A background export: status, progress and, when done, the download URL",
        responses={200: ExportJobSerializer, 404: ErrorSerializer},
        examples=[examples.EXPORT_JOB],
    )
    def get(self, request: Request, job_id: int) -> Response:
        return Response(ExportJobSerializer(access_export_job(job_id)).data)


class ExportDownloadView(ExportScopes):
    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(
        operation_id="exports_download",
        summary="Download a finished background export",
        description="409 while the job is not done; 410 when its file has expired (request the export again).",
        responses={
            **FILE_RESPONSES,
            404: ErrorSerializer,
            409: ErrorSerializer,
            410: ErrorSerializer,
        },
    )
    def get(self, request: Request, job_id: int) -> Any:
        job = access_export_job(job_id)
        return export_file_response(job)


def export_file_response(job: ExportJob) -> Any:
    """The finished file of an export job, or a JSON error."""
    path = export_file_ready(job)
    if path is None and job.status != JobStatus.DONE:
        return Response({"detail": f"The export is {job.status}, not done."}, status=status.HTTP_409_CONFLICT)
    if path is None:
        return Response({"detail": "The export file expired; request it again."}, status=status.HTTP_410_GONE)
    return file_download(job, path)


class DiffView(ExportScopes):
    @extend_schema(
        operation_id="dataset_versions_diff",
        summary="What changed against an older version: counts and changed rows (keyset pages)",
        parameters=[DiffQuerySerializer],
        responses={200: DiffSerializer, 400: ErrorSerializer, 404: ErrorSerializer},
        examples=[examples.DIFF],
    )
    def get(self, request: Request, slug: str, version: int) -> Response:
        snapshot = access_snapshot(slug, version)
        query = DiffQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        against = query.validated_data.get("against") or snapshot.stats.get("previous_version")
        if not against:
            raise NotFound("This is the first version; pass `against`.")
        older = access_snapshot(slug, against)
        page = snapshot_diff(
            snapshot,
            older,
            limit=query.validated_data["limit"],
            change=query.validated_data.get("change"),
            after=query.validated_data.get("after"),
        )
        body = {"dataset": slug, "from_version": older.version, "to_version": snapshot.version}
        body.update(counts=page.counts, rows=page.rows, next_after=page.next_after)
        return Response(DiffSerializer(body).data)


def _jsonable(filters: Any) -> dict[str, Any] | None:
    """Validated filter data (dates as date objects) back to the JSON shape services take."""
    if filters is None:
        return None
    return {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in dict(filters).items()}
