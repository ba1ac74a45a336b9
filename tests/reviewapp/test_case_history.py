"""Case history: the `author` key on ingest (both paths), the author's other items on a lead's item
page, and the reviewer's "This author: N prior violations" line where the queue allows it."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from labeling.models import Appeal, GoldSource
from labeling.services.appeals import appeal_open
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem
from reviewapp.services.case_history import none_like_labels
from reviewapp.services.ingest_jobs import ingest_chunk_apply
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, ReviewTaskFactory, UserFactory

LINE = "This author: {} prior violation{} under this policy"


def row(external_id: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "source": "comments",
        "external_id": external_id,
        "text": "you are a clown",
        "policy": "harassment",
        "model_name": "tox",
        "model_version": "v1",
        "score": 0.5,
        **extra,
    }


# ---- ingest ----


@pytest.mark.usefixtures("routing_rule")
class TestIngestAuthor:
    def test_an_author_is_stored_and_the_first_one_kept(self, ingest_client) -> None:
        response = ingest_client.post("/api/v1/decisions", {"decisions": [row("a", author="u-17")]}, format="json")
        assert response.status_code == 200, response.json()
        resend = row("a", author="someone-else", model_version="v2")
        ingest_client.post("/api/v1/decisions", {"decisions": [resend, row("b")]}, format="json")
        authors = dict(ContentItem.objects.values_list("external_id", "author_key"))
        assert authors == {"a": "u-17", "b": ""}  # content is evidence: never rewritten; no author is ""

    @pytest.mark.parametrize(
        ("author", "message"),
        [
            (17, "author must be a string"),
            ("x" * 256, "author is longer than 255 characters"),
            (["u"], "must be a string"),
        ],
    )
    def test_a_bad_author_is_refused_for_its_row_only(self, ingest_client, author, message) -> None:  # type: ignore[no-untyped-def]
        rows = [row("ok-1", author="u-1"), row("bad", author=author), row("ok-2")]
        response = ingest_client.post("/api/v1/decisions", {"decisions": rows}, format="json")
        assert response.status_code == 207
        assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "author")]
        assert message in response.json()["errors"][0]["message"]
        assert set(ContentItem.objects.values_list("external_id", flat=True)) == {"ok-1", "ok-2"}

    def test_an_ingest_job_refuses_a_bad_author_on_receipt_and_stores_the_others_with_theirs(
        self, ingest_client
    ) -> None:
        rows = [row("j-1", author="u-9"), row("j-2", author={"id": 1}), row("j-3")]
        body = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
        response = ingest_client.post("/api/v1/ingest-jobs", body, content_type="application/x-ndjson")
        assert response.status_code == 202, response.json()
        assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "author")]
        from reviewapp.models import IngestChunk

        for chunk_id in IngestChunk.objects.filter(job_id=response.json()["id"]).values_list("pk", flat=True):
            ingest_chunk_apply(chunk_id=chunk_id)
        assert dict(ContentItem.objects.values_list("external_id", "author_key")) == {"j-1": "u-9", "j-3": ""}


# ---- what counts as a violation ----


@pytest.mark.parametrize(
    ("values", "none_like"),
    [
        (["violating", "not_violating"], {"not_violating"}),
        (["hate", "harassment", "none"], {"none"}),
        (["ok", "spam", "scam"], {"ok"}),
        (["no_threat", "non_violent", "threat"], {"no_threat", "non_violent"}),
    ],
)
def test_none_like_labels_come_from_the_schema(values: list[str], none_like: set[str]) -> None:
    assert none_like_labels(values) == none_like


# ---- the author's history ----


@pytest.fixture
def history(policy):  # type: ignore[no-untyped-def]
    """An item by author u-1 in `comments`, and its author's other items: two decided violating, one
    not violating, one undecided; plus a violating item of the same key in another source and one of
    another author (neither is this author's history)."""
    version = policy.current_version()

    def decided(labels: list[str] | None, **item) -> ContentItem:  # type: ignore[no-untyped-def]
        made = ContentItemFactory(**item)
        if labels:
            gold_record(
                item_id=made.pk, policy_version=version, labels=labels, source=GoldSource.ADJUDICATION, actor=SYSTEM
            )
        return made

    others = [
        decided(["violating"], author_key="u-1", external_id="old-1", text="first <b>bad</b> one"),
        decided(["violating"], author_key="u-1", external_id="old-2"),
        decided(["not_violating"], author_key="u-1", external_id="old-3"),
        decided(None, author_key="u-1", external_id="old-4"),
    ]
    decided(["violating"], author_key="u-1", source="forum", external_id="elsewhere")
    decided(["violating"], author_key="u-2", external_id="stranger")
    item = ContentItemFactory(author_key="u-1", external_id="now", text="the item in hand")
    return {"item": item, "others": others}


def test_the_item_page_lists_the_author_s_other_items_and_their_outcomes(history, policy) -> None:  # type: ignore[no-untyped-def]
    QueueFactory(slug="appeals", kind="appeals")
    appeal_open(
        source="comments", external_id="old-1", policy_key=policy.key, external_ref="ap-1", statement="", actor=SYSTEM
    )
    lead = UserFactory(username="case-lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)

    body = client.get(f"/items/{history['item'].pk}/").content.decode()

    assert "Case history: this author" in body and "4 other items" in body
    for other in history["others"]:
        assert f'href="/items/{other.pk}/"' in body
    assert "elsewhere" not in body and "stranger" not in body
    assert "first &lt;b&gt;bad&lt;/b&gt; one" in body
    assert "Harassment: Violating" in body and "Harassment: Not violating" in body
    assert "Current gold labels naming a violation among them: 2" in body
    appeal = Appeal.objects.get()
    assert f"Harassment: {appeal.get_status_display()}</span>" in body  # the appeal and its state
    without = client.get(f"/items/{ContentItemFactory().pk}/").content.decode()
    assert "Case history" not in without


# ---- the workspace line ----


@pytest.fixture
def reviewer_client(queue):  # type: ignore[no-untyped-def]
    reviewer = UserFactory(username="case-reviewer")
    queue.members.add(reviewer)
    client = Client()
    client.force_login(reviewer)
    return client


def workspace(client: Client, queue) -> str:  # type: ignore[no-untyped-def]
    response = client.post(f"/queues/{queue.pk}/work", follow=True)
    assert response.status_code == 200
    html = response.content.decode()
    assert "the item in hand" in html or "you are a clown" in html
    return html


def test_a_non_blind_queue_shows_the_author_s_prior_violations(reviewer_client, history, policy, queue) -> None:  # type: ignore[no-untyped-def]
    ReviewTaskFactory(policy=policy, queue=queue, item=history["item"])
    html = workspace(reviewer_client, queue)
    assert LINE.format(2, "s") in html
    assert "u-1" not in html  # the key itself is never shown


def test_a_blind_queue_never_shows_it(reviewer_client, history, policy, queue) -> None:  # type: ignore[no-untyped-def]
    queue.blind_review = True
    queue.save()
    ReviewTaskFactory(policy=policy, queue=queue, item=history["item"])
    assert "This author" not in workspace(reviewer_client, queue)


def test_a_queue_that_hides_author_history_does_not_show_it(reviewer_client, history, policy, queue) -> None:  # type: ignore[no-untyped-def]
    queue.show_author_history = False
    queue.save()
    ReviewTaskFactory(policy=policy, queue=queue, item=history["item"])
    assert "This author" not in workspace(reviewer_client, queue)


def test_an_item_without_an_author_has_no_line(reviewer_client, policy, queue) -> None:  # type: ignore[no-untyped-def]
    ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="the item in hand"))
    assert "This author" not in workspace(reviewer_client, queue)


def test_the_count_is_under_the_task_s_policy(reviewer_client, history, queue) -> None:  # type: ignore[no-untyped-def]
    spam = PolicyFactory(key="spam", name="Spam")
    ReviewTaskFactory(policy=spam, queue=queue, item=history["item"])
    assert LINE.format(0, "s") in workspace(reviewer_client, queue)
