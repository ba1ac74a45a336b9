"""REST endpoints of the review workflow. Thin: parse, call one service, render."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..services.ingest import decisions_ingest
from .auth import HasScope, token_actor
from .errors import PayloadTooLarge
from .parsers import RowsJSONParser
from .serializers import DecisionBatchSerializer, ErrorSerializer, IngestResponseSerializer

EXAMPLE_BATCH = {
    "decisions": [
        {
            "source": "comments",
            "external_id": "c-1029",
            "text": "you are a clown",
            "context": [{"author": "u1", "text": "what do you think?"}],
            "metadata": {"language": "en", "region": "GB", "surface": "comments"},
            "reach": 1500,
            "policy": "harassment",
            "model_name": "tox-bert",
            "model_version": "2026.11",
            "score": 0.64,
            "predicted_label": "violating",
            "evidence_spans": [{"start": 10, "end": 15, "label": "insult"}],
        }
    ]
}


class DecisionsView(APIView):
    """Bulk, idempotent ingest of upstream model decisions."""

    permission_classes = [HasScope]
    required_scope = "decisions:write"
    parser_classes = [RowsJSONParser]

    @extend_schema(
        operation_id="decisions_ingest",
        summary="Ingest model decisions (bulk, idempotent, per-row validation)",
        description=(
            "Each row is one model's score for one item under one policy. Rows are validated and "
            "stored independently: valid rows are kept even when others fail, and failures are "
            "listed by index in `errors`. Re-sending a decision (same source, external_id, policy, "
            "model_name, model_version) creates nothing and returns the stored outcome with "
            "status `duplicate`. Response: 200 when every row was accepted, 207 when some were, "
            "400 when none were. Requires the `decisions:write` scope."
        ),
        request=DecisionBatchSerializer,
        responses={
            200: IngestResponseSerializer,
            207: IngestResponseSerializer,
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="IngestRejected",
                    serializers=[IngestResponseSerializer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                description="No row was accepted (the rows' errors), or the body is not a batch at all (`detail`).",
            ),
            413: ErrorSerializer,
        },
        examples=[OpenApiExample("One decision", value=EXAMPLE_BATCH, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        rows = _batch_rows(request.data)
        result = decisions_ingest(rows=rows, actor=token_actor(request))
        accepted = len(result.results)
        body = {
            "accepted": accepted,
            "created": result.created,
            "rejected": len(result.errors),
            "results": result.results,
            "errors": result.errors,
        }
        if not result.errors:
            code = status.HTTP_200_OK
        else:
            code = status.HTTP_207_MULTI_STATUS if accepted else status.HTTP_400_BAD_REQUEST
        return Response(body, status=code)


def _batch_rows(data: object) -> list:
    if not isinstance(data, dict) or not isinstance(data.get("decisions"), list):
        raise ParseError("Body must be a JSON object with a 'decisions' list.")
    rows = data["decisions"]
    if not rows:
        raise ParseError("'decisions' is empty.")
    if len(rows) > settings.INGEST_MAX_ROWS:
        raise PayloadTooLarge(
            f"Batch has {len(rows)} rows; the limit is {settings.INGEST_MAX_ROWS} (REVIEWAPP_INGEST_MAX_ROWS)."
        )
    return rows
