"""Item search (/items/) and the item page (/items/<id>/): filters, keyset pages, saved searches,
access, escaping; items enter through the ingest API as upstream systems send them."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.test import Client

from labeling.models import GoldSource
from labeling.services.annotations import annotation_submit
from labeling.services.appeals import appeal_open
from labeling.services.consensus import adjudication_request
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ContentItem, ReviewTask, SavedSearch
from reviewapp.services import search
from reviewapp.services.claims import task_claim_next
from tests.factories import PolicyFactory, QueueFactory, RoutingRuleFactory, UserFactory

URL = "/items/"
HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(1)> invoice \u202efdp.exe zero\u200bwidth'


def lead_user(username: str = "lead") -> User:
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(lead_user())
    return client


def ingest(ingest_client, *rows: tuple[str, str, float], policy: str = "harassment", text: str = "") -> None:  # type: ignore[no-untyped-def]
    decisions = [
        {"source": "comments", "external_id": external_id, "text": text or body, "policy": policy,
         "model_name": "tox", "model_version": "v1", "score": score, "decided_at": "2026-03-05T10:00:00Z"}
        for external_id, body, score in rows
    ]  # fmt: skip
    response = ingest_client.post("/api/v1/decisions", {"decisions": decisions}, format="json")
    assert response.status_code == 200, response.content


@pytest.fixture
def world(ingest_client, policy, queue, routing_rule):  # type: ignore[no-untyped-def]
    """One item per status under `harassment`, and one `spam` item."""
    ingest(
        ingest_client,
        ("enforced", "you are a clown", 0.95),
        ("cleared", "lovely weather today", 0.05),
        ("waiting", "a CLOWN car went by", 0.5),
        ("labelled", "plain words here", 0.5),
        ("disputed", "some disputed words", 0.5),
    )
    RoutingRuleFactory(policy=PolicyFactory(key="spam", name="Spam"), queue=QueueFactory(slug="spam-review"))
    ingest(ingest_client, ("spam-1", "buy cheap watches", 0.5), policy="spam")
    version = policy.current_version()
    labelled = ContentItem.objects.get(external_id="labelled")
    gold_record(
        item_id=labelled.pk, policy_version=version, labels=["violating"], source=GoldSource.ADJUDICATION, actor=SYSTEM
    )
    ReviewTask.objects.filter(item=labelled).update(status="completed")
    with transaction.atomic():
        task = ReviewTask.objects.select_for_update().get(item__external_id="disputed")
        adjudication_request(task=task, reason="disagreement", actor=SYSTEM)
    return {"policy": policy, "version": version}


def found(response) -> list[str]:  # type: ignore[no-untyped-def]
    """External ids listed in the results table, in page order."""
    assert response.status_code == 200, response.content.decode()[:2000]
    return re.findall(r'<th scope="row"><a href="/items/\d+/"><bdi>([^<]*)</bdi></a></th>', response.content.decode())


def search_for(client: Client, **params: str) -> list[str]:
    return found(client.get(f"{URL}?{urlencode(params)}"))


def test_external_id_finds_exactly_that_item(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    assert search_for(lead_client, external_id="waiting") == ["waiting"]
    assert search_for(lead_client, external_id="wait") == []


def test_source_matches_exactly(lead_client, world, ingest_client) -> None:  # type: ignore[no-untyped-def]
    response = ingest_client.post(
        "/api/v1/decisions",
        {
            "decisions": [
                {
                    "source": "posts",
                    "external_id": "p-1",
                    "text": "t",
                    "policy": "harassment",
                    "model_name": "tox",
                    "model_version": "v1",
                    "score": 0.5,
                }
            ]
        },
        format="json",
    )
    assert response.status_code == 200
    assert search_for(lead_client, source="posts") == ["p-1"]
    assert len(search_for(lead_client, source="comments")) == 6


def test_text_is_a_case_insensitive_substring(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    assert sorted(search_for(lead_client, text="clown")) == ["enforced", "waiting"]
    assert search_for(lead_client, text="WEATHER") == ["cleared"]


def test_policy_keeps_items_with_anything_under_it(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    assert search_for(lead_client, policy="spam") == ["spam-1"]
    assert "spam-1" not in search_for(lead_client, policy="harassment")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("open_task", {"waiting", "spam-1"}),
        ("awaiting_adjudication", {"disputed"}),
        ("gold", {"labelled"}),
        ("auto_actioned", {"enforced"}),
        ("auto_cleared", {"cleared"}),
    ],
)
def test_each_status(lead_client, world, status: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert set(search_for(lead_client, status=status)) == expected


def test_status_under_a_policy(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    assert search_for(lead_client, status="open_task", policy="spam") == ["spam-1"]
    assert search_for(lead_client, status="open_task", policy="harassment") == ["waiting"]


def test_label_follows_the_current_gold_version(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    assert search_for(lead_client, label="harassment:violating") == ["labelled"]
    item = ContentItem.objects.get(external_id="labelled")
    gold_record(
        item_id=item.pk,
        policy_version=world["version"],
        labels=["not_violating"],
        source=GoldSource.ADJUDICATION,
        actor=SYSTEM,
    )
    assert search_for(lead_client, label="harassment:violating") == []
    response = lead_client.get(f"{URL}?label=harassment:not_violating")
    assert found(response) == ["labelled"]
    assert "Not violating" in response.content.decode()  # the display name, not the key, in the results


def test_received_and_decided_date_ranges(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    ContentItem.objects.filter(external_id="enforced").update(created_at=datetime(2026, 1, 15, 23, 30, tzinfo=UTC))
    assert search_for(lead_client, received_from="2026-01-15", received_to="2026-01-15") == ["enforced"]
    assert search_for(lead_client, received_to="2026-01-14") == []
    assert len(search_for(lead_client, decided_from="2026-03-05", decided_to="2026-03-05")) == 6
    assert search_for(lead_client, decided_from="2026-03-06") == []
    assert len(search_for(lead_client, received_to="9999-12-31", decided_to="9999-12-31")) == 6


def page_links(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    links = re.findall(r'<a rel="(next|prev)" href="([^"]+)"', response.content.decode())
    return {rel: html.unescape(href) for rel, href in links}


def test_keyset_pages_neither_repeat_nor_skip_rows_that_share_a_time(lead_client, world, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(search, "PAGE_SIZE", 4)
    tied = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)
    ContentItem.objects.bulk_create(
        ContentItem(source="tied", external_id=f"t-{n}", text="same time") for n in range(11)
    )
    ContentItem.objects.filter(source="tied").update(created_at=tied)
    expected = list(ContentItem.objects.filter(source="tied").order_by("-id").values_list("external_id", flat=True))

    pages = []
    response = lead_client.get(f"{URL}?source=tied")
    assert "More than 4 matching items" in response.content.decode()
    pages.append(found(response))
    while "next" in page_links(response):
        response = lead_client.get(page_links(response)["next"])
        pages.append(found(response))
    assert [len(page) for page in pages] == [4, 4, 3]
    assert [external_id for page in pages for external_id in page] == expected
    assert "source=tied" in page_links(response)["prev"]

    back = [found(response)]
    while "prev" in page_links(response):
        response = lead_client.get(page_links(response)["prev"])
        back.insert(0, found(response))
    assert back == pages


def test_a_short_result_is_counted(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    response = lead_client.get(f"{URL}?text=clown")
    assert "2 matching items" in response.content.decode()
    assert page_links(response) == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"received_from": "yesterday"}, "Enter a valid date."),
        ({"received_from": "2026-02-02", "received_to": "2026-02-01"}, "The end date is before the start date."),
        ({"status": "deleted"}, "Select a valid choice."),
        ({"label": "harassment:nonsense"}, "Select a valid choice."),
        ({"policy": "nope"}, "Select a valid choice."),
        ({"text": "ab"}, "Ensure this value has at least 3 characters"),
        ({"after": "not-a-cursor"}, "This page link is damaged"),
        ({"after": "YXwyMDI2LTAxLTAxfHg"}, "This page link is damaged"),
        ({"after": "YXwyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwfDk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"}, "This page link is damaged"),
    ],
)
def test_a_bad_filter_is_named_beside_the_form(lead_client, world, params: dict[str, str], message: str) -> None:  # type: ignore[no-untyped-def]
    response = lead_client.get(f"{URL}?{urlencode(params)}")
    assert response.status_code == 400
    body = response.content.decode()
    assert html.escape(message, quote=False) in body or message in body
    assert "Correct the filters marked above" in body


def test_saved_searches_belong_to_their_owner(world) -> None:  # type: ignore[no-untyped-def]
    owner, other = Client(), Client()
    owner.force_login(lead_user("owner"))
    other.force_login(lead_user("other"))
    response = owner.post("/items/saved", {"name": "Waiting clowns", "query": "text=clown&status=open_task"})
    assert response.status_code == 302
    saved = SavedSearch.objects.get(name="Waiting clowns")
    assert saved.query == "text=clown&status=open_task"
    page = owner.get(URL).content.decode()
    assert "Waiting clowns" in page and 'href="/items/?text=clown&amp;status=open_task"' in page
    assert found(owner.get(f"{URL}?{saved.query}")) == ["waiting"]

    assert "Waiting clowns" not in other.get(URL).content.decode()
    assert other.post(f"/items/saved/{saved.pk}/delete").status_code == 404
    assert SavedSearch.objects.filter(pk=saved.pk).exists()

    assert owner.post(f"/items/saved/{saved.pk}/delete").status_code == 302
    assert not SavedSearch.objects.filter(pk=saved.pk).exists()
    actions = list(
        AuditEvent.objects.filter(object_type="saved_search").order_by("id").values_list("action", "actor_label")
    )
    assert actions == [("saved_search.create", "owner"), ("saved_search.delete", "owner")]


def test_a_duplicate_name_or_an_invalid_search_is_not_saved(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    assert lead_client.post("/items/saved", {"name": "Mine", "query": "status=gold"}).status_code == 302
    response = lead_client.post("/items/saved", {"name": "Mine", "query": "status=open_task"}, follow=True)
    assert "You already have a saved search named" in response.content.decode()
    response = lead_client.post("/items/saved", {"name": "Broken", "query": "received_from=never"}, follow=True)
    assert "Only a valid search can be saved" in response.content.decode()
    assert list(SavedSearch.objects.values_list("name", "query")) == [("Mine", "status=gold")]


def test_reviewers_get_403_on_search_and_item_pages(world) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(UserFactory(username="reviewer"))
    item = ContentItem.objects.get(external_id="labelled")
    assert client.get(URL).status_code == 403
    assert client.get(f"/items/{item.pk}/").status_code == 403
    assert client.post("/items/saved", {"name": "x", "query": "status=gold"}).status_code == 403
    assert Client().get(f"/items/{item.pk}/").status_code == 302  # to the login page


def test_hostile_text_is_escaped_on_both_pages(lead_client, ingest_client, world) -> None:  # type: ignore[no-untyped-def]
    ingest(ingest_client, ("hostile", "", 0.5), text=HOSTILE)
    item = ContentItem.objects.get(external_id="hostile")
    for url in (f"{URL}?text=alert", f"/items/{item.pk}/"):
        body = lead_client.get(url).content.decode()
        assert "<script>alert(1)</script>" not in body
        assert "<img src=x" not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    body = lead_client.get(f"/items/{item.pk}/").content.decode()
    assert "right-to-left override" in body and "zero-width space" in body


def test_the_item_page_shows_everything_that_happened(lead_client, world, queue) -> None:  # type: ignore[no-untyped-def]
    reviewer = UserFactory(username="rev-one")
    claim = task_claim_next(reviewer=reviewer, queue=queue)
    assert claim is not None
    item = claim.task.item
    annotation_submit(
        task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["not_violating"],
        rationale="sarcasm <b>not</b> abuse",
    )  # fmt: skip
    gold_record(
        item_id=item.pk,
        policy_version=world["version"],
        labels=["violating"],
        source=GoldSource.ADJUDICATION,
        actor=SYSTEM,
    )
    QueueFactory(slug="appeals", kind="appeals")
    appeal_open(
        source=item.source, external_id=item.external_id, policy_key="harassment", external_ref="ap-9",
        statement="I was <i>joking</i>", actor=SYSTEM,
    )  # fmt: skip

    response = lead_client.get(f"/items/{item.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "tox" in body and "Human review" in body  # the decision and where routing sent it
    assert "rev-one" in body and "Not violating" in body and "sarcasm &lt;b&gt;not&lt;/b&gt; abuse" in body
    assert f'href="/lead/gold/{item.pk}/{world["policy"].pk}/"' in body
    assert "I was &lt;i&gt;joking&lt;/i&gt;" in body
    assert f'href="/items/{item.pk}/audit.jsonl"' in body
    assert re.search(r"<td>annotation\.\w+</td>", body)  # the audit trail, listed on the page
    assert lead_client.get(f"/items/{item.pk + 10_000}/").status_code == 404


def test_an_adjudication_shows_on_the_item_page_with_a_link(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    item = ContentItem.objects.get(external_id="disputed")
    body = lead_client.get(f"/items/{item.pk}/").content.decode()
    assert "Reviewers disagreed" in body and 'href="/lead/adjudications/' in body


def test_the_search_page_runs_a_fixed_number_of_queries(lead_client, world, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    lead_client.get(URL)  # session and user caches warm
    # session, user, lead group, policies, policy versions, saved searches, the page, then five
    # for the rows: policies, decisions, open and escalated tasks, current gold; with a filter, the
    # bulk action form's queues
    with django_assert_num_queries(12):
        assert len(found(lead_client.get(f"{URL}?policy=harassment&status=open_task"))) == 1
    with django_assert_num_queries(11):
        assert len(found(lead_client.get(URL))) == 6


def test_an_empty_result_needs_no_row_queries(lead_client, world, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    with django_assert_num_queries(7):
        assert found(lead_client.get(f"{URL}?external_id=nothing-like-this")) == []


def test_lead_pages_link_items_to_their_record(lead_client, world) -> None:  # type: ignore[no-untyped-def]
    labelled = ContentItem.objects.get(external_id="labelled")
    disputed = ContentItem.objects.get(external_id="disputed")
    gold_page = lead_client.get(f"/lead/gold/{labelled.pk}/{world['policy'].pk}/").content.decode()
    assert f'href="/items/{labelled.pk}/"' in gold_page
    adjudications = lead_client.get("/lead/adjudications/").content.decode()
    assert f'href="/items/{disputed.pk}/"' in adjudications
    adjudication = disputed.tasks.get().adjudications.get()
    assert (
        f'href="/items/{disputed.pk}/"' in lead_client.get(f"/lead/adjudications/{adjudication.pk}/").content.decode()
    )
    assert 'href="/items/"' in lead_client.get("/").content.decode()  # in the lead's navigation


def test_the_item_page_runs_a_fixed_number_of_queries(lead_client, world, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    disputed = ContentItem.objects.get(external_id="disputed")
    lead_client.get(f"/items/{disputed.pk}/")
    # session, user, lead group; the item, decisions, tasks, annotations, adjudications, gold, appeals, audit;
    # its comment thread
    with django_assert_num_queries(12):
        assert lead_client.get(f"/items/{disputed.pk}/").status_code == 200
