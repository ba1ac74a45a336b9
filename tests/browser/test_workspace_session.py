"""The reviewer workspace over a session, with the keyboard: the previous answer after an undo, the
session counter, Enter in the escalate note, and the labels in view beside long content."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from labeling.models import Adjudication, Annotation
from reviewapp.models import TaskStatus
from tests.browser.conftest import VIEWPORT
from tests.browser.workspace_nav import keys_ready, open_next_item
from tests.factories import ContentItemFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

LONG_TEXT = ("This is a very long post that goes on and on about many things. " * 80)[:5000]


@pytest.fixture
def three_tasks(policy, review_queue):  # type: ignore[no-untyped-def]
    texts = ["first item to label", "second item to label", "third item to label"]
    return [
        ReviewTaskFactory(policy=policy, queue=review_queue, priority=10 - n, item=ContentItemFactory(text=text))
        for n, text in enumerate(texts)
    ]


def test_undo_shows_the_previous_answer_and_the_counter_follows(
    page: Page, watch, screenshot, log_in, reviewer, review_queue, three_tasks
) -> None:
    content = page.locator(".content-text")
    counter = page.locator("#session-counter")
    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    expect(counter).to_contain_text("0 done")
    expect(counter).to_contain_text("3 open in this queue")
    expect(counter).to_contain_text("this session")

    # Label, severity and a rationale, then submit with Enter from the label.
    page.keyboard.press("1")
    page.locator("#severity").select_option("high")
    page.locator("#rationale").fill("slur aimed at a group")
    page.locator('#annotate-form input[name="labels"][value="violating"]').focus()
    page.keyboard.press("Enter")
    expect(content).to_have_text("second item to label")
    expect(counter).to_contain_text("1 done")
    screenshot("after-first-answer")

    keys_ready(page)
    page.keyboard.press("u")
    expect(content).to_have_text("first item to label")
    previous = page.locator("#previous-answer")
    expect(previous).to_contain_text("Your previous answer: Violating, severity High")
    expect(previous).to_contain_text("slur aimed at a group")
    checked = page.locator('#annotate-form input[name="labels"]:checked')
    expect(checked).to_have_count(1)
    expect(checked).to_have_value("violating")
    expect(checked).to_be_focused()
    expect(page.locator("#severity")).to_have_value("high")
    expect(page.locator("#rationale")).to_have_value("slur aimed at a group")
    expect(counter).to_contain_text("0 done")  # the undone answer no longer counts
    screenshot("undone-previous-answer")

    # Change the label with its key; the rest of the previous answer goes with it.
    keys_ready(page)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(content).to_have_text("second item to label")
    expect(counter).to_contain_text("1 done")
    expect(page.locator("#previous-answer")).to_have_count(0)
    live = Annotation.objects.get(task=three_tasks[0], retracted_at__isnull=True)
    assert (live.labels, live.severity, live.rationale) == (["not_violating"], "high", "slur aimed at a group")

    keys_ready(page)
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(content).to_have_text("third item to label")
    expect(counter).to_contain_text("2 done")
    expect(counter).to_contain_text("1 open in this queue")
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])


def test_escalate_note_is_sent_with_enter(page: Page, watch, log_in, reviewer, review_queue, three_tasks) -> None:
    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    page.keyboard.press("e")
    note = page.locator("#escalate-note")
    expect(note).to_be_focused()
    page.keyboard.type("not sure: quoted slur")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    expect(page.locator("#task-region .notice")).to_have_text("Escalated to a policy lead.")
    expect(page.locator(".content-text")).to_have_text("second item to label")
    task = three_tasks[0]
    task.refresh_from_db()
    assert task.status == TaskStatus.ESCALATED
    assert Adjudication.objects.get(task=task).note == "not sure: quoted slur\nsecond line"
    assert (watch.dialogs, watch.csp_violations) == ([], [])


def test_labels_stay_in_view_beside_a_long_item(
    page: Page, watch, screenshot, log_in, reviewer, policy, review_queue
) -> None:
    ReviewTaskFactory(policy=policy, queue=review_queue, item=ContentItemFactory(text=LONG_TEXT))
    assert page.viewport_size == VIEWPORT == {"width": 1280, "height": 720}
    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    expect(page.locator(".content-text")).to_contain_text(LONG_TEXT[:60])
    screenshot("long-item")
    for element in [*page.locator("#annotate-form label.choice").all(), page.get_by_role("button", name="Submit")]:
        box = element.bounding_box()
        assert box is not None
        assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], box
        assert box["x"] + box["width"] <= VIEWPORT["width"], box
    # Nothing scrolls sideways at this size.
    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
    assert watch.csp_violations == []


def test_another_region_settling_does_not_end_the_wait_for_the_next_item(
    page: Page, log_in, reviewer, review_queue, three_tasks
) -> None:
    """Keys stay off until the task region itself settles: the navigation's unread count, loaded by
    htmx on every page, can settle while the next item is on its way (a slow machine saw a key
    pressed in that gap, then the item's settle moved the focus away from the note being typed)."""
    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    page.evaluate(
        """() => {
        const fire = (name, target) => document.dispatchEvent(new CustomEvent(name, {detail: {target}}));
        fire("htmx:beforeRequest", document.getElementById("task-region"));
        fire("htmx:afterSettle", document.querySelector("header nav") || document.body);
    }"""
    )
    expect(page.locator("html[data-workspace-busy]")).to_be_attached()
    page.keyboard.press("e")
    expect(page.locator("#escalate-panel")).not_to_have_attribute("open", "")
    page.evaluate(
        """() => document.dispatchEvent(new CustomEvent("htmx:afterSettle",
            {detail: {target: document.getElementById("task-region")}}))"""
    )
    expect(page.locator("html[data-workspace-busy]")).not_to_be_attached()
    page.keyboard.press("e")
    expect(page.locator("#escalate-note")).to_be_focused()
