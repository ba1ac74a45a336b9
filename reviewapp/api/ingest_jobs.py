"""Bulk ingest in the background: POST /api/v1/ingest-jobs, GET /api/v1/ingest-jobs/{id}.

For upstream backfills larger than one POST /api/v1/decisions batch: the rows are checked and
stored at once (202), then applied by workers in chunks (see `reviewapp.services.ingest_jobs`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied
from rest_framework.parsers import BaseParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import IngestJob, IngestJobStatus, ServiceToken
from ..services.ingest_jobs import ERRORS_PAGE, UnreadableRow, ingest_job_create, ingest_job_errors
from .auth import HasScope, token_actor
from .errors import PayloadTooLarge
from .parsers import strict_json_loads
from .serializers import DecisionBatchSerializer, ErrorSerializer, RowErrorSerializer
from .views import EXAMPLE_BATCH

NDJSON = "application/x-ndjson"


def _read_body(stream: Any, parser_context: Mapping[str, Any] | None) -> bytes:
    """The request body, refused with 413 beyond INGEST_JOB_MAX_BODY_BYTES (declared or counted)."""
    limit = settings.INGEST_JOB_MAX_BODY_BYTES
    request = (parser_context or {}).get("request")
    declared = request.META.get("CONTENT_LENGTH") if request is not None else None
    too_large = f"the limit is {limit} bytes (REVIEWAPP_INGEST_JOB_MAX_BODY_BYTES); split the rows into several jobs"
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {declared} bytes; {too_large}.")
    body = stream.read(limit + 1) if stream is not None else b""
    if len(body) > limit:
        raise PayloadTooLarge(f"Request body is larger than {limit} bytes; {too_large}.")
    return body


class JobJSONParser(BaseParser):
    """`{"decisions": [...]}`, the body of POST /api/v1/decisions, up to the job's size limit."""

    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        body = _read_body(stream, parser_context)
        try:
            return strict_json_loads(body.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ParseError(f"Request body is not valid UTF-8 (byte {error.start}).") from None
        except json.JSONDecodeError as error:
            raise ParseError(f"Malformed JSON: {error.msg} at line {error.lineno} column {error.colno}.") from None
        except (RecursionError, ValueError) as error:
            raise ParseError(f"Malformed JSON: {_reason(error)}.") from None


class NDJSONParser(BaseParser):
    """One decision per line. A line that is not JSON is rejected like an invalid row; the rest
    of the body is still read (a backfill is not lost to one bad line)."""

    media_type = NDJSON

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        body = _read_body(stream, parser_context)
        lines = enumerate(body.split(b"\n"), start=1)
        return {"decisions": [_ndjson_row(line, number) for number, line in lines if line.strip()]}


def _ndjson_row(line: bytes, number: int) -> Any:
    try:
        return strict_json_loads(line.decode("utf-8"))
    except UnicodeDecodeError as error:
        return UnreadableRow(f"line {number} is not valid UTF-8 (byte {error.start})")
    except json.JSONDecodeError as error:
        return UnreadableRow(f"line {number}: malformed JSON: {error.msg} at column {error.colno}")
    except (RecursionError, ValueError) as error:
        return UnreadableRow(f"line {number}: malformed JSON: {_reason(error)}")


def _reason(error: Exception) -> str:
    return "nested too deeply" if isinstance(error, RecursionError) else str(error)


class IngestJobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField(help_text="Poll this for progress.")
    status = serializers.ChoiceField(
        choices=IngestJobStatus.choices,
        help_text="queued: no chunk applied yet; running; done; failed: some chunks could not be applied "
        "(their rows are kept and can be sent again by an admin).",
    )
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    rows_received = serializers.IntegerField(help_text="Rows in the request body.")
    rows_queued = serializers.IntegerField(help_text="Rows valid on receipt, stored for the workers.")
    rows_created = serializers.IntegerField(help_text="Decisions stored by this job.")
    rows_duplicate = serializers.IntegerField(help_text="Decisions that were already stored (same identity).")
    rows_rejected = serializers.IntegerField(help_text="Rows refused, on receipt or when applied; see `errors`.")
    chunks_total = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    chunks_failed = serializers.IntegerField()
    errors = RowErrorSerializer(  # type: ignore[assignment]  # a field named like Serializer.errors
        many=True,
        help_text=f"Row errors by index, at most {ERRORS_PAGE} per response; the rows of a failed chunk are "
        "listed too, with the chunk's error.",
    )
    next_errors = serializers.URLField(allow_null=True, help_text="The next page of errors, if there are more.")


class IngestJobRejectedSerializer(serializers.Serializer):
    detail = serializers.CharField()
    rows_rejected = serializers.IntegerField(required=False)
    errors = RowErrorSerializer(  # type: ignore[assignment]
        many=True, required=False, help_text=f"The first {ERRORS_PAGE} row errors."
    )


class IngestJobsView(APIView):
    """Start a bulk ingest job."""

    permission_classes = [HasScope]
    required_scope = "decisions:write"
    parser_classes = [JobJSONParser, NDJSONParser]

    @extend_schema(
        operation_id="ingest_jobs_create",
        summary="Ingest a large batch of model decisions in the background",
        description=(
            'For backfills: the same rows as `POST /api/v1/decisions`, as `{"decisions": [...]}` or as '
            f"NDJSON (`{NDJSON}`, one decision per line), up to REVIEWAPP_INGEST_JOB_MAX_ROWS rows and "
            "REVIEWAPP_INGEST_JOB_MAX_BODY_BYTES bytes. Every row is validated at once, exactly as for "
            "`/decisions`; the valid rows are stored before the 202 is sent and then applied by workers, "
            "idempotently (a decision sent again is reported as a duplicate). Poll `url` for progress and "
            "per-row errors (unknown policies and the like are found when rows are applied). 400 when no "
            "row is valid: nothing is stored. Only the token that created a job can read it. Requires the "
            "`decisions:write` scope."
        ),
        request={"application/json": DecisionBatchSerializer, NDJSON: OpenApiTypes.STR},
        responses={
            202: IngestJobSerializer,
            400: IngestJobRejectedSerializer,
            413: ErrorSerializer,
            415: ErrorSerializer,
        },
        examples=[OpenApiExample("One decision", value=EXAMPLE_BATCH, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        rows = _job_rows(request.data)
        job = ingest_job_create(rows=rows, actor=token_actor(request), token=_token(request))
        body = _job_body(request, IngestJob.objects.get(pk=job.pk))
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


def _job_rows(data: object) -> list:
    if not isinstance(data, dict) or not isinstance(data.get("decisions"), list):
        raise ParseError(
            "Body must be a JSON object with a 'decisions' list, or NDJSON with one decision per line "
            f"(Content-Type: {NDJSON})."
        )
    rows = data["decisions"]
    if not rows:
        raise ParseError("The body holds no decisions.")
    limit = settings.INGEST_JOB_MAX_ROWS
    if len(rows) > limit:
        raise PayloadTooLarge(
            f"The job has {len(rows)} rows; the limit is {limit} (REVIEWAPP_INGEST_JOB_MAX_ROWS): "
            "split the rows into several jobs."
        )
    return rows


class IngestJobDetailView(APIView):
    """Progress and row errors of a bulk ingest job."""

    permission_classes = [HasScope]
    required_scope = "decisions:write"

    @extend_schema(
        operation_id="ingest_jobs_retrieve",
        summary="Progress, counts and row errors of a bulk ingest job",
        parameters=[
            OpenApiParameter(
                "errors_from", int, description="List row errors from this row index on (pages of errors)."
            )
        ],
        responses={200: IngestJobSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, ingest_job_id: int) -> Response:
        job = IngestJob.objects.filter(pk=ingest_job_id, token=_token(request)).first()
        if job is None:
            raise NotFound("No ingest job with this id was created with this token.")
        return Response(_job_body(request, job, errors_from=_errors_from(request)))


def _token(request: Request) -> ServiceToken:
    """The service token of the request (HasScope lets no other caller through)."""
    if not isinstance(request.auth, ServiceToken):
        raise PermissionDenied("This endpoint needs a service token.")
    return request.auth


def _errors_from(request: Request) -> int:
    raw = request.query_params.get("errors_from", "0")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise ParseError("errors_from must be a row index (a non-negative integer).")
    return int(raw)


def _job_body(request: Request, job: IngestJob, *, errors_from: int = 0) -> dict[str, Any]:
    errors, next_from = ingest_job_errors(job, start=errors_from)
    url = request.build_absolute_uri(reverse("api-ingest-job", args=[job.pk]))
    return {
        "id": job.pk,
        "url": url,
        "status": job.status,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "rows_received": job.rows_received,
        "rows_queued": job.rows_queued,
        "rows_created": job.rows_created,
        "rows_duplicate": job.rows_duplicate,
        "rows_rejected": job.rows_rejected,
        "chunks_total": job.chunks_total,
        "chunks_done": job.chunks_done,
        "chunks_failed": job.chunks_failed,
        "errors": errors,
        "next_errors": f"{url}?errors_from={next_from}" if next_from is not None else None,
    }
