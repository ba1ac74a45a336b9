"""API errors that used to be 500s or misleading: deep JSON on every endpoint, JSON 500s under
/api/, and chunked request bodies (through a real gunicorn)."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from reviewapp.api.ingest_jobs import JobJSONParser, NDJSONParser
from reviewapp.api.parsers import BoundedJSONParser
from tests.faults.services import free_port, wait_until
from tests.worker import test_database_url as worker_database_url

ROOT = Path(__file__).resolve().parents[2]
DEEP = "[" * 100_000 + "]" * 100_000


def token_client(make_token, scopes: list[str]) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(scopes)}")
    return client


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("/api/v1/appeals", "appeals:write"),
        ("/api/v1/rounds", "models:write"),
        ("/api/v1/datasets/", "export:write"),
    ],
)
def test_deeply_nested_json_is_a_400_on_endpoints_with_the_default_parser(make_token, url: str, scope: str) -> None:
    response = token_client(make_token, [scope]).post(url, DEEP, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json() == {"detail": "Malformed JSON: nested too deeply."}


@pytest.mark.parametrize(
    ("url", "scope", "body"),
    [
        ("/api/v1/appeals", "appeals:write", '{"item_id": 1e400, "policy": "harassment"}'),
        ("/api/v1/rounds", "models:write", '{"policy": "harassment", "head": {"lr": 1e400}}'),
        ("/api/v1/datasets/", "export:write", '{"slug": "s", "name": "n", "train_percent": -1e999}'),
    ],
)
def test_a_number_beyond_float_range_is_a_400_outside_ingest(
    make_token, policy, url: str, scope: str, body: str
) -> None:
    response = token_client(make_token, [scope]).post(url, body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert "beyond the float range" in response.json()["detail"]


def _api_views(patterns: list, prefix: str = "") -> Iterator[tuple[str, type]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
            yield prefix + str(pattern.pattern), pattern.callback.cls


def test_every_api_endpoint_parses_json_strictly() -> None:
    """Annotations, release, escalate, threshold approval, version create…: none falls back to DRF's
    JSONParser (a RecursionError, so a 500, on deep nesting; NaN accepted)."""
    strict = (BoundedJSONParser, JobJSONParser, NDJSONParser)
    views = [(route, view) for route, view in _api_views(get_resolver().url_patterns) if route.startswith("api/")]

    assert len(views) > 20
    for route, view in views:
        assert all(isinstance(parser, strict) for parser in view().get_parsers()), route


def test_an_unexpected_error_under_api_is_a_json_500_with_the_request_id(ingest_client) -> None:
    # A real failure inside the request: the token table is gone (rolled back with the test).
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE reviewapp_servicetoken RENAME TO reviewapp_servicetoken_gone")
    ingest_client.raise_request_exception = False

    response = ingest_client.post("/api/v1/decisions", {"decisions": []}, format="json")

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    request_id = response["X-Request-ID"]
    assert response.json() == {"detail": f"Internal server error. Quote request id {request_id} when reporting it."}
    assert "Traceback" not in response.content.decode() and "servicetoken" not in response.content.decode()


def test_an_unexpected_error_elsewhere_is_still_the_html_page(admin_client) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE reviewapp_queue RENAME TO reviewapp_queue_gone")
    admin_client.raise_request_exception = False

    response = admin_client.get("/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


CHUNKED_MESSAGE = (
    "Chunked request bodies (Transfer-Encoding without Content-Length) are not supported; send Content-Length."
)


def test_a_chunked_body_is_411_with_the_environ_gunicorn_passes(ingest_client) -> None:
    # gunicorn de-chunks the body into wsgi.input and passes no CONTENT_LENGTH; Django's test
    # client always sets one, so it is blanked as Django reads a missing one.
    response = ingest_client.generic(
        "POST",
        "/api/v1/decisions",
        json.dumps({"decisions": []}),
        content_type="application/json",
        CONTENT_LENGTH="",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411
    assert response.json() == {"detail": CHUNKED_MESSAGE}


@pytest.fixture
def gunicorn(transactional_db, tmp_path) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The production web server (tools.stack.supervise.web_command) on a free loopback port."""
    from tools.stack.supervise import web_command

    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        web_command(port, workers=1), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until(lambda: _healthy(port, process, tmp_path), timeout=60, what="gunicorn answering /healthz")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _healthy(port: int, process: subprocess.Popen, tmp_path: Path) -> bool:
    assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@pytest.mark.slow
def test_a_chunked_body_through_gunicorn_is_a_clear_411(gunicorn: int) -> None:
    body = json.dumps({"decisions": [{"source": "s"}]}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", gunicorn, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer nope"}

    # An iterable body with encode_chunked: Transfer-Encoding: chunked and no Content-Length.
    connection.request("POST", "/api/v1/decisions", body=iter([body]), headers=headers, encode_chunked=True)
    response = connection.getresponse()

    assert response.status == 411
    assert response.getheader("Content-Type") == "application/json"
    assert json.loads(response.read()) == {"detail": CHUNKED_MESSAGE}
    connection.close()
