"""GET /api/v1/items?source=&external_id=: an upstream system looks up what became of its item."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import GoldSource
from labeling.services.gold import gold_record
from reviewapp.api.items import EXTERNAL_ID_REQUIRED
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem
from tests.factories import ContentItemFactory, QueueFactory, ReviewTaskFactory, UserFactory

URL = "/api/v1/items"


def lookup(client: Client | APIClient, **params: str):  # type: ignore[no-untyped-def]
    return client.get(f"{URL}?{urlencode(params)}")


@pytest.fixture
def reader(make_token) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['items:read'])}")
    return client


@pytest.fixture
def history(ingest_client, make_token, policy, queue, routing_rule):  # type: ignore[no-untyped-def]
    """An item ingested twice (one enforced, one to review), with a corrected gold label, an appeal, a
    honeypot task and reviewers who are named nowhere in the answer."""
    rows = [
        {"source": "comments", "external_id": "c-1", "text": "x", "policy": "harassment", "model_name": "tox",
         "model_version": version, "score": score}
        for version, score in (("v1", 0.95), ("v2", 0.5))
    ]  # fmt: skip
    assert ingest_client.post("/api/v1/decisions", {"decisions": rows}, format="json").status_code == 200
    item = ContentItem.objects.get(source="comments", external_id="c-1")
    lead = UserFactory(username="lead-adjudicator-name")
    version = policy.current_version()
    first = gold_record(
        item_id=item.pk, policy_version=version, labels=["not_violating"], source=GoldSource.ADJUDICATION,
        actor=SYSTEM, adjudicator=lead,
    )  # fmt: skip
    current = gold_record(
        item_id=item.pk, policy_version=version, labels=["violating"], source=GoldSource.ADJUDICATION,
        actor=SYSTEM, adjudicator=lead,
    )  # fmt: skip
    ReviewTaskFactory(item=item, policy=policy, queue=QueueFactory(slug="second-opinions"), reason="honeypot")
    QueueFactory(slug="appeals", kind="appeals")
    appeals = APIClient()
    appeals.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['appeals:write'])}")
    appeal = {"source": "comments", "external_id": "c-1", "policy": "harassment", "appeal_id": "ap-1"}
    assert appeals.post("/api/v1/appeals", appeal, format="json").status_code == 201
    return {"item": item, "first": first, "current": current, "lead": lead}


def test_the_item_comes_with_its_decisions_tasks_current_gold_and_appeals(reader, history) -> None:
    response = lookup(reader, source="comments", external_id="c-1")

    assert response.status_code == 200, response.content
    body = response.json()
    item = history["item"]
    assert (body["id"], body["source"], body["external_id"], body["modality"]) == (item.pk, "comments", "c-1", "text")
    decisions = [(d["model_version"], d["score"], d["routing_outcome"], d["audit_sampled"]) for d in body["decisions"]]
    assert decisions == [("v1", 0.95, "auto_action", False), ("v2", 0.5, "review", False)]
    assert {d["policy"] for d in body["decisions"]} == {"harassment"} and body["decisions"][0]["policy_version"] == 1
    (gold,) = body["gold_labels"]  # only the current version of the corrected label
    assert (gold["id"], gold["labels"], gold["version"], gold["policy_version"]) == (
        history["current"].pk,
        ["violating"],
        2,
        1,
    )
    assert [(t["reason"], t["status"], t["queue"]) for t in body["tasks"]] == [
        ("low_confidence", "open", "harassment-review"),  # the v2 decision's review
        ("appeal", "open", "appeals"),
    ]
    (appeal,) = body["appeals"]
    assert (appeal["appeal_id"], appeal["status"], appeal["original_labels"]) == ("ap-1", "open", ["violating"])


def test_no_person_and_no_honeypot_shows(reader, history) -> None:
    text = lookup(reader, source="comments", external_id="c-1").content.decode()

    assert "honeypot" not in text
    assert history["lead"].username not in text and "adjudicator" not in text and "leased" not in text


def test_a_lookup_costs_a_fixed_number_of_queries(reader, history, django_assert_num_queries) -> None:
    lookup(reader, source="comments", external_id="c-1")  # the token's last use is recorded once a minute
    with django_assert_num_queries(6):  # the token, then the item and its four lists
        assert lookup(reader, source="comments", external_id="c-1").status_code == 200


def test_the_scope_is_required(make_token, db) -> None:
    ingest_only = APIClient()
    ingest_only.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write', 'appeals:write'])}")
    ContentItemFactory(source="comments", external_id="c-1")

    refused = lookup(ingest_only, source="comments", external_id="c-1")
    anonymous = lookup(APIClient(), source="comments", external_id="c-1")

    assert refused.status_code == 403 and "items:read" in refused.json()["detail"]
    assert anonymous.status_code in (401, 403)


def test_a_signed_in_reviewer_or_lead_without_a_token_is_refused(db) -> None:
    """The lookup is for upstream services; people see items on the lead pages."""
    lead = UserFactory(username="a-lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    ContentItemFactory(source="comments", external_id="c-1")
    for user in (UserFactory(username="a-reviewer"), lead):
        client = Client()
        client.force_login(user)
        assert lookup(client, source="comments", external_id="c-1").status_code == 403


def test_missing_parameters_are_a_400_that_says_what_is_needed(reader) -> None:
    source_only = lookup(reader, source="comments")
    nothing = lookup(reader)
    blank = lookup(reader, source="comments", external_id="")

    assert source_only.status_code == 400 and EXTERNAL_ID_REQUIRED in source_only.json()["detail"]
    assert nothing.status_code == 400 and "source is required" in nothing.json()["detail"]
    assert blank.status_code == 400 and "external_id" in blank.json()["errors"]


def test_an_unknown_item_is_a_404(reader) -> None:
    ContentItemFactory(source="comments", external_id="c-1")

    for params in ({"source": "comments", "external_id": "c-2"}, {"source": "forum", "external_id": "c-1"}):
        response = lookup(reader, **params)
        assert response.status_code == 404 and response.json()["detail"]


@pytest.mark.parametrize(
    "external_id",
    [
        "' OR 1=1 --",
        "c-1%' OR external_id LIKE '%",
        "😀 מזהה \u202eexe.pdf",
        "e\u0301",  # combining accent: not the same id as "é"
        "x" * 255,
    ],
)
def test_hostile_external_ids_match_exactly_or_not_at_all(reader, external_id) -> None:
    ContentItemFactory(source="comments", external_id="c-1")
    ContentItemFactory(source="comments", external_id="é")
    assert lookup(reader, source="comments", external_id=external_id).status_code == 404

    ContentItemFactory(source="comments", external_id=external_id)
    found = lookup(reader, source="comments", external_id=external_id)

    assert found.status_code == 200 and found.json()["external_id"] == external_id


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"source": "comments", "external_id": "x" * 256}, "external_id"),
        ({"source": "s" * 101, "external_id": "c-1"}, "source"),
    ],
)
def test_over_long_values_are_a_400(reader, params, field) -> None:
    response = lookup(reader, **params)

    assert response.status_code == 400 and field in response.json()["errors"]


def test_a_nul_or_broken_encoding_is_a_400_not_a_server_error(reader) -> None:
    nul = reader.get(f"{URL}?source=comments&external_id=c%001")
    surrogate = reader.get(f"{URL}?source=comments&external_id=%ED%A0%80")

    assert nul.status_code == 400
    assert surrogate.status_code in (400, 404)
