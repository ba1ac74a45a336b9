"""GET /api/v1/items with search parameters: the lead search's filters and keyset pages over REST."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from rest_framework.test import APIClient

from reviewapp.models import ContentItem
from reviewapp.services import search
from tests.factories import QueueFactory, ReviewTaskFactory

URL = "/api/v1/items"


@pytest.fixture
def reader(make_token) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['items:read'])}")
    return client


@pytest.fixture
def items(ingest_client, routing_rule):  # type: ignore[no-untyped-def]
    rows = [
        {"source": "comments", "external_id": f"c-{n}", "text": f"message {n} about clowns", "policy": "harassment",
         "model_name": "tox", "model_version": "v1", "score": score}
        for n, score in enumerate((0.95, 0.5, 0.5, 0.05, 0.5, 0.95, 0.5))
    ]  # fmt: skip
    assert ingest_client.post("/api/v1/decisions", {"decisions": rows}, format="json").status_code == 200
    return rows


def get(client: APIClient, **params: str):  # type: ignore[no-untyped-def]
    return client.get(f"{URL}?{urlencode(params)}")


def test_a_status_search_lists_pages_of_items(reader, items, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(search, "PAGE_SIZE", 2)
    first = get(reader, status="open_task")
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["previous"] is None and body["next"]
    seen = [row["external_id"] for row in body["results"]]
    assert body["results"][0]["statuses"] == ["open_task"] and body["results"][0]["policies"] == ["harassment"]
    while body["next"]:
        body = get(reader, status="open_task", after=body["next"]).json()
        seen += [row["external_id"] for row in body["results"]]
    assert seen == ["c-6", "c-4", "c-2", "c-1"]
    back = get(reader, status="open_task", before=body["previous"]).json()
    assert [row["external_id"] for row in back["results"]] == ["c-6", "c-4"]


def test_filters_combine_and_the_lookup_is_unchanged(reader, items) -> None:  # type: ignore[no-untyped-def]
    found = get(reader, text="CLOWNS", status="auto_actioned", source="comments").json()["results"]
    assert [row["external_id"] for row in found] == ["c-5", "c-0"]
    assert get(reader, external_id="c-3", status="auto_cleared").json()["results"][0]["external_id"] == "c-3"
    lookup = get(reader, source="comments", external_id="c-3").json()
    assert lookup["external_id"] == "c-3" and "decisions" in lookup and "results" not in lookup


def test_a_honeypot_task_is_not_an_open_task(reader, items, policy) -> None:  # type: ignore[no-untyped-def]
    item = ContentItem.objects.get(external_id="c-3")  # auto-cleared: no task of its own
    ReviewTaskFactory(item=item, policy=policy, queue=QueueFactory(slug="checks"), reason="honeypot")
    found = get(reader, status="open_task", policy="harassment").json()["results"]
    assert "c-3" not in [row["external_id"] for row in found]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "gone"}, "status"),
        ({"received_from": "soon"}, "received_from"),
        ({"text": "ab"}, "text"),
        ({"after": "garbage"}, "after"),
        ({"label": "harassment:purple"}, "label"),
    ],
)
def test_a_bad_search_parameter_is_a_400_naming_it(reader, items, params: dict[str, str], field: str) -> None:  # type: ignore[no-untyped-def]
    response = get(reader, **params)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_searching_needs_the_scope(make_token, items) -> None:  # type: ignore[no-untyped-def]
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
    assert get(other, status="gold").status_code == 403
