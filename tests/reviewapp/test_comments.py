"""Item comments with @mentions, the notifications page, /outcomes/, and their REST API."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from labeling.models import Adjudication
from labeling.services.adjudication import adjudication_decide
from labeling.services.annotations import annotation_submit
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ItemComment, Notification
from reviewapp.services.claims import task_claim_next
from reviewapp.services.comments import item_comment_create, item_visible_to, mentioned_usernames
from reviewapp.services.notifications import notify
from reviewapp.services.tokens import token_create
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory

HOSTILE = "<img src=x onerror=alert(1)> <script>alert(2)</script> \u202eevil"


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def lead(db):  # type: ignore[no-untyped-def]
    user = UserFactory(username="lena")
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def worked(policy, queue):  # type: ignore[no-untyped-def]
    """An item a reviewer answered; another reviewer of the queue never saw it."""
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(external_id="c-1"))
    reviewer, stranger = UserFactory(username="rita"), UserFactory(username="sam")
    queue.members.add(reviewer, stranger)
    task_claim_next(reviewer=reviewer, queue=queue)
    annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
    return task.item, reviewer, stranger


def client_of(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_mentions_are_parsed_once_each_and_end_at_a_full_stop() -> None:
    assert mentioned_usernames("@rita and @lena.  @rita again, mail a@b.c, @x.y.") == ["rita", "lena", "x.y"]


def test_who_may_read_an_items_thread(worked, lead) -> None:
    item, reviewer, stranger = worked
    assert item_visible_to(user=lead, item_id=item.pk)
    assert item_visible_to(user=reviewer, item_id=item.pk)
    assert not item_visible_to(user=stranger, item_id=item.pk)


def test_a_mention_notifies_readers_only_and_never_the_author(worked, lead) -> None:
    item, reviewer, _ = worked
    comment = item_comment_create(item_id=item.pk, author=lead, body="@rita why violating? cc @sam @lena @nobody")
    assert comment.mentions == [reviewer.pk]  # sam cannot read the thread, lena wrote it
    [notification] = Notification.objects.all()
    assert (notification.user, notification.kind) == (reviewer, "mention")
    assert notification.url == f"/items/{item.pk}/comments/#comment-{comment.pk}"
    assert notification.text.startswith("lena mentioned you on item c-1: @rita why violating?")
    event = AuditEvent.objects.get(action="comment.created")
    assert (event.actor_id, event.item_id, event.after["mentions"]) == (lead.pk, item.pk, [reviewer.pk])


def test_a_reviewer_can_mention_a_lead(worked, lead) -> None:
    item, reviewer, _ = worked
    item_comment_create(item_id=item.pk, author=reviewer, body="@lena is the second turn quoted?")
    assert list(Notification.objects.values_list("user_id", flat=True)) == [lead.pk]


def test_comments_are_refused_when_empty_too_long_or_from_a_stranger(worked) -> None:
    item, _, stranger = worked
    with pytest.raises(ValidationError):
        item_comment_create(item_id=item.pk, author=worked[1], body="   ")
    with pytest.raises(ValidationError):
        item_comment_create(item_id=item.pk, author=worked[1], body="x" * 5001)
    with pytest.raises(PermissionDenied):
        item_comment_create(item_id=item.pk, author=stranger, body="hello")
    assert not ItemComment.objects.exists()


def test_the_thread_page_for_a_reviewer_who_worked_on_the_item(worked) -> None:
    item, reviewer, stranger = worked
    client = client_of(reviewer)
    response = client.post(f"/items/{item.pk}/comments/new", {"body": HOSTILE})
    comment = ItemComment.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/items/{item.pk}/comments/#comment-{comment.pk}"
    page = client.get(f"/items/{item.pk}/comments/").content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert client_of(stranger).get(f"/items/{item.pk}/comments/").status_code == 404
    assert client_of(stranger).post(f"/items/{item.pk}/comments/new", {"body": "x"}).status_code == 404


def test_a_lead_comments_from_the_item_page_with_htmx_and_a_bad_comment_says_why(worked, lead) -> None:
    item, _, _ = worked
    client = client_of(lead)
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'id="comments"' in page and "No comments yet." in page
    response = client.post(
        f"/items/{item.pk}/comments/new", {"body": "@rita look again", "return": "item"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200 and "@rita look again" in response.content.decode()
    response = client.post(f"/items/{item.pk}/comments/new", {"body": " ", "return": "item"})
    assert response.status_code == 400 and "Write a comment first." in response.content.decode()
    plain = client.post(f"/items/{item.pk}/comments/new", {"body": "noted", "return": "item"})
    assert plain["Location"].startswith(f"/items/{item.pk}/#comment-")


def test_notifications_page_unread_count_and_mark_read(worked) -> None:
    _, reviewer, _ = worked
    first, second = notify(users=[reviewer], kind="mention", text=HOSTILE, url="/outcomes/") + notify(
        users=[reviewer], kind="sent_back", text="look again", url="/"
    )
    client = client_of(reviewer)
    assert "2" in client.get("/notifications/unread").content.decode()
    page = client.get("/notifications/").content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    response = client.post("/notifications/read", {"id": first.pk}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'id="notification-list"' in response.content.decode()
    assert Notification.objects.filter(read_at__isnull=True).get() == second
    assert client.post("/notifications/read", {"id": "x"}).status_code == 302
    client.post("/notifications/read")
    assert not Notification.objects.filter(read_at__isnull=True).exists()
    assert client.get("/notifications/unread").content.decode().strip() == ""


def test_outcomes_page_lists_an_overturned_answer(policy, queue, lead) -> None:
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(external_id="c-2", text=HOSTILE))
    right, wrong = UserFactory(username="r1"), UserFactory(username="r2")
    for reviewer, label in ((right, "violating"), (wrong, "not_violating")):
        task_claim_next(reviewer=reviewer, queue=queue)
        annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])
    adjudication = Adjudication.objects.get(task=task)
    adjudication_decide(adjudication_id=adjudication.pk, lead=lead, labels=["violating"], note="quoted slur")
    page = client_of(wrong).get("/outcomes/").content.decode()
    assert "c-2" in page and "Not violating" in page and "quoted slur" in page and "lena" in page
    assert "<img src=x" not in page and f'href="/items/{task.item_id}/comments/"' in page
    assert "No overturned answers." in client_of(right).get("/outcomes/").content.decode()
    # The reviewer may open the item's thread from there.
    assert client_of(wrong).get(f"/items/{task.item_id}/comments/").status_code == 200


# ---- REST ----


@pytest.fixture
def reviewer_token(worked):  # type: ignore[no-untyped-def]
    _, reviewer, _ = worked
    _, secret = token_create(name="mine", scopes=["tasks:write"], user=reviewer, actor=SYSTEM)
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_api_comments_get_and_post(worked, lead, reviewer_token) -> None:
    item, reviewer, stranger = worked
    url = f"/api/v1/items/{item.pk}/comments"
    created = reviewer_token.post(url, {"body": "@lena " + HOSTILE}, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["mentions"] == [lead.pk] and created.json()["author"] == "rita"
    listed = reviewer_token.get(url).json()["comments"]
    assert [c["body"] for c in listed] == ["@lena " + HOSTILE]
    empty = reviewer_token.post(url, {"body": ""}, content_type="application/json")
    assert empty.status_code == 400 and "detail" in empty.json()
    _, secret = token_create(name="theirs", scopes=["tasks:write"], user=stranger, actor=SYSTEM)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get(url).status_code == 404
    _, unscoped = token_create(name="narrow", scopes=["items:read"], user=reviewer, actor=SYSTEM)
    assert Client(HTTP_AUTHORIZATION=f"Bearer {unscoped}").get(url).status_code == 403


def test_api_notifications_and_mark_read(worked, reviewer_token) -> None:
    _, reviewer, _ = worked
    first, second = notify(users=[reviewer], kind="mention", text="a") + notify(users=[reviewer], kind="b", text="b")
    body = reviewer_token.get("/api/v1/notifications").json()
    assert body["unread"] == 2 and [n["id"] for n in body["notifications"]] == [second.pk, first.pk]
    marked = reviewer_token.post("/api/v1/notifications/read", {"ids": [first.pk]}, content_type="application/json")
    assert marked.json() == {"marked": 1}
    assert (
        reviewer_token.post("/api/v1/notifications/read", {"ids": ["x"]}, content_type="application/json").status_code
        == 400
    )
    assert reviewer_token.post("/api/v1/notifications/read", {}, content_type="application/json").json() == {
        "marked": 1
    }


def test_api_outcomes(policy, queue, lead) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(external_id="c-3"))
    queue.required_annotations = 2
    queue.save()
    wrong, right = UserFactory(username="w"), UserFactory(username="r")
    for reviewer, label in ((wrong, "not_violating"), (right, "violating")):
        task_claim_next(reviewer=reviewer, queue=queue)
        annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])
    adjudication_decide(adjudication_id=Adjudication.objects.get().pk, lead=lead, labels=["violating"], note="n")
    _, secret = token_create(name="w", scopes=["tasks:write"], user=wrong, actor=SYSTEM)
    [outcome] = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get("/api/v1/outcomes").json()["outcomes"]
    assert (outcome["external_id"], outcome["your_labels"], outcome["final_labels"]) == (
        "c-3",
        ["not_violating"],
        ["violating"],
    )
    assert (outcome["decided_by"], outcome["note"], outcome["policy"]) == ("lena", "n", policy.key)


def test_the_thread_adds_one_query_to_the_item_page_however_long(worked, lead) -> None:
    item, reviewer, _ = worked
    client = client_of(lead)
    client.get(f"/items/{item.pk}/")
    with CaptureQueriesContext(connection) as empty:
        assert client.get(f"/items/{item.pk}/").status_code == 200
    for n in range(3):
        item_comment_create(item_id=item.pk, author=reviewer if n % 2 else lead, body=f"@rita note {n}")
    with CaptureQueriesContext(connection) as full:
        page = client.get(f"/items/{item.pk}/").content.decode()
    assert page.count('<li class="comment"') == 3, page
    assert len(full) == len(empty) == 12  # the page's 11 (pinned in test_item_search) and the thread
    assert sum("reviewapp_itemcomment" in q["sql"] for q in full.captured_queries) == 1
