"""Media may load from allowlisted https hosts and from the app's own static files, nowhere else."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from reviewapp.content import media_for
from reviewapp.middleware import content_security_policy
from reviewapp.models import ContentItem

URL = "/api/v1/decisions"
DEMO_IMAGE = "/static/reviewapp/demo/sunset.png"


def row(external_id: str, media_urls: list[str]) -> dict:
    return {
        "source": "posts",
        "external_id": external_id,
        "modality": "image",
        "text": "see attached",
        "media_urls": media_urls,
        "policy": "harassment",
        "model_name": "mm-guard",
        "model_version": "1",
        "score": 0.5,
    }


def test_the_apps_own_static_files_may_load_without_any_allowlisted_host(settings) -> None:
    settings.MEDIA_ALLOWED_HOSTS = []
    media = media_for([DEMO_IMAGE, "/static/reviewapp/demo/chime.wav"], "mixed")
    assert [(m.allowed, m.kind) for m in media] == [(True, "image"), (True, "audio")]


@pytest.mark.parametrize(
    "url",
    [
        "//evil.example/static/reviewapp/demo/sunset.png",  # another host, scheme-relative
        "/static/../admin/",  # leaves the static folder
        "/static/reviewapp/%2e%2e/%2e%2e/admin/",  # the same, percent-escaped
        "/static/reviewapp\\..\\..\\admin",  # browsers read backslashes as slashes
        "/static/reviewapp/demo/sunset.png?next=/admin/",
        "/accounts/logout/",  # an app page, not a static file
        "/staticfiles/x.png",
        "http://127.0.0.1:8000/static/reviewapp/demo/sunset.png",  # absolute: only allowlisted https hosts
        "https://media.example.com/a.png",
    ],
)
def test_nothing_else_may_load(settings, url: str) -> None:
    settings.MEDIA_ALLOWED_HOSTS = []
    assert media_for([url], "image")[0].allowed is False


def test_an_absolute_static_url_does_not_make_relative_paths_loadable(settings) -> None:
    settings.STATIC_URL = "https://cdn.example.com/static/"
    assert media_for([DEMO_IMAGE], "image")[0].allowed is False


def test_the_csp_admits_images_and_media_from_the_apps_own_origin(settings) -> None:
    settings.MEDIA_ALLOWED_HOSTS = []
    directives = dict(part.split(" ", 1) for part in content_security_policy().split("; "))
    assert "'self'" in directives["img-src"].split() and "'self'" in directives["media-src"].split()


@pytest.mark.django_db
@pytest.mark.usefixtures("routing_rule")
def test_ingest_takes_a_static_path_and_refuses_other_relative_urls(ingest_client: APIClient) -> None:
    rows = [
        row("own", [DEMO_IMAGE]),
        row("page", ["/accounts/logout/"]),
        row("escape", ["/static/../admin/"]),
    ]
    response = ingest_client.post(URL, {"decisions": rows}, format="json")
    assert response.status_code == 207, response.content
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "media_urls"), (2, "media_urls")]
    assert ContentItem.objects.get().media_urls == [DEMO_IMAGE]
