"""A reviewer works a queue with the keyboard alone: label, skip, undo, label again."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from labeling.models import Annotation, AnnotationSource
from reviewapp.models import AuditEvent, TaskSkip, TaskStatus
from tests.browser.workspace_nav import keys_ready
from tests.factories import ContentItemFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

# Served highest priority first, so this is the order the reviewer sees them in.
ITEMS = [
    ("first: you people are vermin", 5.0),
    ("second: lovely weather in Lisbon today", 4.0),
    ("third: un texte que je ne lis pas", 3.0),
    ("fourth: I know where you live", 2.0),
    ("fifth: nice goal in the second half", 1.0),
]
LABEL_KEYS = {"1": "violating", "2": "not_violating"}


@pytest.fixture
def queued_tasks(policy, review_queue):  # type: ignore[no-untyped-def]
    return [
        ReviewTaskFactory(policy=policy, queue=review_queue, priority=priority, item=ContentItemFactory(text=text))
        for text, priority in ITEMS
    ]


def tab_to(page: Page, name: str, *, limit: int = 20) -> None:
    """Press Tab until the focused element's text is `name`, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent.trim()") == name:
            return
    raise AssertionError(f"{name!r} cannot be reached with Tab")


def answer(page: Page, key: str) -> None:
    """Choose a label by its number key, then submit with Enter."""
    keys_ready(page)
    page.keyboard.press(key)
    expect(page.locator(f'#annotate-form input[value="{LABEL_KEYS[key]}"]')).to_be_checked()
    page.keyboard.press("Enter")


def test_keyboard_only_review_session(page: Page, watch, screenshot, log_in, reviewer, queued_tasks) -> None:
    first, second, third, fourth, fifth = queued_tasks
    content = page.locator(".content-text")
    notice = page.locator("#task-region .notice")

    log_in(reviewer)
    screenshot("queue-list")
    tab_to(page, "Start reviewing")
    page.keyboard.press("Enter")
    expect(content).to_have_text(ITEMS[0][0])
    expect(page.locator('#annotate-form input[name="labels"]').first).to_be_focused()
    screenshot("first-item")

    answer(page, "1")
    expect(content).to_have_text(ITEMS[1][0])
    expect(notice).to_have_text("Saved.")
    screenshot("first-labelled-violating")

    answer(page, "2")
    expect(content).to_have_text(ITEMS[2][0])
    screenshot("second-labelled-not-violating")

    keys_ready(page)
    page.keyboard.press("s")
    expect(page.locator("#skip-reason")).to_be_focused()
    screenshot("skip-reason-open")
    page.keyboard.press("Enter")
    expect(content).to_have_text(ITEMS[3][0])
    expect(notice).to_have_text("Skipped.")
    screenshot("third-skipped")

    answer(page, "1")
    expect(content).to_have_text(ITEMS[4][0])
    expect(page.locator("#undo-form")).to_be_visible()
    screenshot("fourth-labelled-violating")

    keys_ready(page)
    page.keyboard.press("u")
    expect(content).to_have_text(ITEMS[3][0])
    expect(notice).to_have_text("Undone: label it again.")
    expect(page.locator('#annotate-form input[name="labels"]').first).to_be_focused()
    screenshot("fourth-undone")

    answer(page, "2")
    expect(content).to_have_text(ITEMS[4][0])
    screenshot("fourth-relabelled-not-violating")

    annotations = list(Annotation.objects.order_by("pk"))
    assert [(a.task_id, a.labels, a.retracted_at is not None) for a in annotations] == [
        (first.pk, ["violating"], False),
        (second.pk, ["not_violating"], False),
        (fourth.pk, ["violating"], True),
        (fourth.pk, ["not_violating"], False),
    ]
    assert {a.reviewer_id for a in annotations} == {reviewer.pk}
    assert {a.source for a in annotations} == {AnnotationSource.WORKSPACE}
    assert all(a.handle_time_ms > 0 for a in annotations), [a.handle_time_ms for a in annotations]

    for task in queued_tasks:
        task.refresh_from_db()
    assert [t.status for t in (first, second, fourth)] == [TaskStatus.COMPLETED] * 3
    assert (third.status, third.leased_by_id) == (TaskStatus.OPEN, None)
    assert (fifth.status, fifth.leased_by_id) == (TaskStatus.OPEN, reviewer.pk)
    assert list(TaskSkip.objects.values_list("task_id", "reviewer_id", "reason")) == [
        (third.pk, reviewer.pk, "not my language")  # the first reason is the default
    ]

    events = AuditEvent.objects.filter(
        action__in=["annotation.submitted", "task.skipped", "annotation.retracted"]
    ).order_by("pk")
    assert [(e.action, e.object_id, e.actor_id) for e in events] == [
        ("annotation.submitted", str(annotations[0].pk), reviewer.pk),
        ("annotation.submitted", str(annotations[1].pk), reviewer.pk),
        ("task.skipped", str(third.pk), reviewer.pk),
        ("annotation.submitted", str(annotations[2].pk), reviewer.pk),
        ("annotation.retracted", str(annotations[2].pk), reviewer.pk),
        ("annotation.submitted", str(annotations[3].pk), reviewer.pk),
    ]
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])
