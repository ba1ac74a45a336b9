"""Feedback between leads and reviewers, each walked by the person who does it.

A lead sends an adjudication back with a note: the two reviewers who answered (and nobody else)
get it back, read the note, answer, and consensus resolves the item. A lead's decision overturns
an answer: its reviewer is notified and finds it on /outcomes/. A comment's @mention notifies the
person named, and hostile comment text stays text.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.models import Adjudication, GoldSource
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_current
from reviewapp.models import ItemComment, Notification, TaskAssignment
from reviewapp.services.claims import task_claim_next
from tests.browser.axe import serious_violations
from tests.browser.conftest import PASSWORD
from tests.browser.workspace_nav import keys_ready, start_reviewing
from tests.factories import ContentItemFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

NOTE = "Read the second turn: it quotes the insult."
HOSTILE = "@ana why? <img src=x onerror=alert(1)> <script>alert(2)</script> \u202eevil"


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # answers resolve at once


@pytest.fixture
def people(transactional_db, queue):  # type: ignore[no-untyped-def]
    """A lead and three reviewers of the queue."""
    lead = User.objects.create_user(username="lena", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    reviewers = [User.objects.create_user(username=name, password=PASSWORD) for name in ("ana", "ben", "cy")]
    queue.members.add(*reviewers)
    return lead, reviewers


@pytest.fixture
def disputed(people, policy, queue):  # type: ignore[no-untyped-def]
    """Ana said violating, Ben not violating: the item waits for a lead. Cy answered nothing."""
    queue.required_annotations = 2
    queue.save()
    item = ContentItemFactory(source="comments", external_id="c-7", text="you play like my grandmother, clown")
    task = ReviewTaskFactory(policy=policy, queue=queue, item=item)
    _, (ana, ben, _) = people
    for reviewer, label in ((ana, "violating"), (ben, "not_violating")):
        assert task_claim_next(reviewer=reviewer, queue=queue).task.pk == task.pk
        annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])
    return Adjudication.objects.get(task=task)


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Username")).to_be_visible()


def test_a_lead_sends_an_adjudication_back_to_the_same_reviewers(
    page: Page, watch, screenshot, log_in, people, disputed, queue
) -> None:
    lead, (ana, ben, cy) = people
    log_in(lead)
    page.goto(f"/lead/adjudications/{disputed.pk}/")
    page.get_by_text("Send back to reviewers").click()
    page.get_by_label("What should reviewers look at?").fill(NOTE)
    screenshot("lead-sends-back")
    page.get_by_role("button", name="Send back", exact=True).click()
    expect(page.get_by_text("Sent back for another review.")).to_be_visible()
    log_out(page)

    # Cy is a member of the queue but answered nothing: the item is not his to take.
    log_in(cy)
    page.goto(f"/queues/{queue.pk}/work")
    page.get_by_role("button", name="Start reviewing").click()
    expect(page.get_by_role("heading", name="Nothing to review here right now")).to_be_visible()
    log_out(page)

    for reviewer in (ana, ben):
        log_in(reviewer)
        start_reviewing(page, queue.pk)
        notes = page.get_by_role("region", name="A lead sent your answer back")
        expect(notes).to_contain_text(f"lena: {NOTE}")
        expect(page.locator(".content-text")).to_have_text("you play like my grandmother, clown")
        screenshot(f"{reviewer.username}-sees-the-note")
        assert serious_violations(page) == []
        keys_ready(page)
        page.keyboard.press("1")  # violating, both of them this time
        expect(page.locator('#annotate-form input[value="violating"]')).to_be_checked()
        page.keyboard.press("Enter")
        expect(page.locator("#task-region .notice")).to_have_text("Saved.")
        expect(page.get_by_role("heading", name="Nothing to review here right now")).to_be_visible()
        log_out(page)

    gold = gold_current(item_id=disputed.task.item_id, policy_id=disputed.task.policy_id)
    assert (gold.labels, gold.source, gold.n_annotations) == (["violating"], GoldSource.CONSENSUS, 2)
    assert sorted(TaskAssignment.objects.values_list("reviewer__username", flat=True)) == ["ana", "ben"]
    assert not TaskAssignment.objects.filter(fulfilled_at__isnull=True).exists()
    assert sorted(Notification.objects.filter(kind="sent_back").values_list("user__username", flat=True)) == [
        "ana",
        "ben",
    ]
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])


def test_an_overturned_answer_is_notified_and_shown_on_outcomes(
    page: Page, watch, screenshot, log_in, people, disputed
) -> None:
    lead, (_, ben, _) = people
    log_in(lead)
    page.goto(f"/lead/adjudications/{disputed.pk}/")
    page.locator('#annotate-form input[value="violating"]').check()
    page.get_by_label("Note (kept with the gold label)").fill("A quoted insult is still an insult.")
    page.get_by_role("button", name="Record gold label").click()
    expect(page.get_by_text("Decided: the gold label is recorded.")).to_be_visible()
    log_out(page)

    log_in(ben)
    page.goto("/notifications/")
    notification = page.locator(".notification.unread")
    expect(notification).to_have_count(1)
    expect(notification).to_contain_text("A lead's decision overturned your answer on item c-7")
    screenshot("ben-notified")
    assert serious_violations(page) == []
    notification.get_by_role("link", name="Open").click()
    expect(page.get_by_role("heading", name="Your outcomes")).to_be_visible()
    row = page.locator("#outcomes tr.outcome")
    expect(row).to_have_count(1)
    for text in ("c-7", "you play like my grandmother", "Not violating", "Violating", "lena"):
        expect(row).to_contain_text(text)
    expect(row).to_contain_text("A quoted insult is still an insult.")
    screenshot("ben-outcomes")
    assert serious_violations(page) == []
    # Marking it read empties the unread list.
    page.goto("/notifications/")
    page.get_by_role("button", name="Mark all read").click()
    expect(page.locator(".notification.unread")).to_have_count(0)
    assert not Notification.objects.filter(user=ben, read_at__isnull=True).exists()
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])


def test_a_mention_in_a_comment_notifies_and_hostile_text_stays_text(
    page: Page, watch, screenshot, log_in, people, disputed
) -> None:
    lead, (ana, _, cy) = people
    item_id = disputed.task.item_id
    log_in(lead)
    page.goto(f"/items/{item_id}/")
    comments = page.get_by_role("region", name="Comments")
    comments.get_by_label("Add a comment").fill(HOSTILE)
    comments.get_by_role("button", name="Post comment").click()
    body = page.locator("#comments .comment-body")
    expect(body).to_have_count(1)
    expect(body).to_have_text(HOSTILE)
    expect(page.locator("#comments img, #comments script")).to_have_count(0)
    screenshot("lead-comments")
    assert serious_violations(page) == []
    log_out(page)

    log_in(ana)
    page.goto("/notifications/")
    notification = page.locator(".notification.unread")
    expect(notification).to_contain_text("lena mentioned you on item c-7: " + HOSTILE)
    notification.get_by_role("link", name="Open").click()
    expect(page.get_by_role("heading", name="Item c-7: comments")).to_be_visible()
    expect(page.locator("#comments .comment-body")).to_have_text(HOSTILE)
    expect(page.locator("#comments img, #comments script")).to_have_count(0)
    # The right-to-left override is isolated in its <bdi>: the author line after it reads as written.
    expect(page.locator("#comments .comment .muted strong")).to_have_text("lena")
    expect(page.locator("#comments .hidden-characters")).to_have_text(
        "Hidden characters in this comment: right-to-left override."
    )
    page.get_by_label("Add a comment").fill("@lena thanks, I see it now.")
    page.get_by_role("button", name="Post comment").click()
    expect(page.locator("#comments .comment-body")).to_have_count(2)
    screenshot("ana-replies")
    assert serious_violations(page) == []
    log_out(page)

    # Cy never worked on the item: no thread for him.
    log_in(cy)
    response = page.goto(f"/items/{item_id}/comments/")
    assert response is not None and response.status == 404

    assert [c.mentions for c in ItemComment.objects.order_by("pk")] == [[ana.pk], [lead.pk]]
    assert Notification.objects.filter(user=lead, kind="mention").count() == 1
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])
