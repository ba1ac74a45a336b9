"""Errors on pages are styled pages of the product; under /api/ they stay JSON."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.urls import get_resolver


def _reviewer_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_user(username="err-reviewer"))
    return client


def test_a_wrong_role_url_is_a_styled_403_page(db) -> None:  # type: ignore[no-untyped-def]
    response = _reviewer_client().get("/ops/")

    html = response.content.decode()
    assert response.status_code == 403 and response["Content-Type"].startswith("text/html")
    assert '<link rel="stylesheet" href="/static/reviewapp/app.css">' in html
    assert 'class="error-state" role="alert"' in html and "You do not have access to this page" in html
    assert "Policy leads and staff only." in html and 'href="/"' in html


def test_an_unknown_page_is_a_styled_404_page(db) -> None:  # type: ignore[no-untyped-def]
    response = _reviewer_client().get("/no/such/page")

    html = response.content.decode()
    assert response.status_code == 404 and "Page not found" in html and 'class="error-state"' in html


def test_the_api_still_answers_a_wrong_role_in_json(db) -> None:  # type: ignore[no-untyped-def]
    response = _reviewer_client().post("/api/v1/rounds", {"policy": "x"}, content_type="application/json")

    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("Policy leads")


def test_a_plain_view_refusal_under_the_api_is_json() -> None:
    request = RequestFactory().get("/api/v1/anything")

    response = get_resolver().resolve_error_handler(403)(request, PermissionDenied("no"))

    assert response.status_code == 403 and response["Content-Type"] == "application/json"


def test_an_unknown_api_url_is_still_json(db) -> None:  # type: ignore[no-untyped-def]
    response = _reviewer_client().get("/api/v1/no-such-endpoint")

    assert response.status_code == 404 and response.json()["detail"]
