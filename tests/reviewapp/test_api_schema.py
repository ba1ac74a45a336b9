"""The OpenAPI schema is generated, complete, and agrees with the ingest validator."""

from __future__ import annotations

import yaml
from django.test import Client

from reviewapp.api.serializers import DecisionRowSerializer
from reviewapp.services.validation import DECISION_FIELDS, ITEM_FIELDS


def test_schema_documents_decisions_endpoint(db, client: Client) -> None:
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    operation = schema["paths"]["/api/v1/decisions"]["post"]
    assert set(operation["responses"]) == {"200", "207", "400", "401", "403", "413", "429"}
    assert operation["requestBody"]["content"]["application/json"]["examples"]


def test_serializer_documents_exactly_the_validated_fields() -> None:
    assert set(DecisionRowSerializer().fields) == ITEM_FIELDS | DECISION_FIELDS


def test_swagger_ui_is_served_without_inline_script(db, client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script>" not in html.replace(" ", "")
    assert "swagger-ui" in html


def test_swagger_ui_page_has_no_inline_style(db, client: Client) -> None:
    """The CSP's style-src is 'self' only; tests/browser/test_api_docs.py checks the rendered page in Chromium."""
    html = client.get("/api/docs/").content.decode()
    assert "<style" not in html and "style=" not in html
    assert "/static/reviewapp/api_docs.css" in html and "/static/drf_spectacular_sidecar/" in html


def test_schema_generates_without_warnings(db) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
