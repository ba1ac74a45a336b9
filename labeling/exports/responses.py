"""HTTP responses shared by the API and the lead pages: a streaming export, a finished file."""

from __future__ import annotations

from pathlib import Path

import orjson
from django.http import FileResponse, StreamingHttpResponse

from .formats import CONTENT_TYPES
from .jobs import export_stream, file_name, rows_in
from .models import DatasetSnapshot, ExportJob


def streaming_export(snapshot: DatasetSnapshot, fmt: str, split: str | None, redact: bool) -> StreamingHttpResponse:
    """The export as a download streamed chunk by chunk (memory stays at one chunk)."""
    response = StreamingHttpResponse(
        export_stream(snapshot.pk, fmt, split=split, redact_pii=redact), content_type=CONTENT_TYPES[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="{file_name(snapshot, fmt, split, redact)}"'
    response["X-Reviewapp-Rows"] = str(rows_in(snapshot, split))
    response["X-Reviewapp-Snapshot-Hash"] = snapshot.content_hash
    response["X-Reviewapp-Split-Definition"] = split_definition_header(snapshot)
    response["Cache-Control"] = "private, no-store"
    return response


def split_definition_header(snapshot: DatasetSnapshot) -> str:
    """The version's split definition as compact JSON with sorted keys, sent beside the bytes.

    Every value is ASCII (hex salt, group rules of letters, digits, '_' and ':'), as headers need.
    """
    return orjson.dumps(snapshot.split_definition, option=orjson.OPT_SORT_KEYS).decode()


def file_download(job: ExportJob, path: Path) -> FileResponse:
    """A finished export file as an attachment."""
    response = FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
    response["Content-Type"] = CONTENT_TYPES[job.format]
    response["X-Reviewapp-Sha256"] = job.sha256
    response["X-Reviewapp-Split-Definition"] = split_definition_header(job.snapshot)
    response["Cache-Control"] = "private, no-store"
    return response
