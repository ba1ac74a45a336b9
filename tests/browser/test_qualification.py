"""Qualification, as the reviewer and the lead live it: onboarding before live work (fail, see why,
retry, pass), an automatic pause from honeypot accuracy, the lead's view of it, re-qualification,
and a lead's own pause and resume.

The honeypots are scored on the real path: the workspace's submit calls `annotation_submit`, which
resolves a completed task inline when the undo window is 0 (`labeling.services.annotations.
_schedule_resolution`; with a window, the Celery task `resolve_task` calls the same `task_resolve`),
and the resolution scores the honeypot and runs the queue's pause rule.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.models import HoneypotCheck, OnboardingAttempt
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, QueueStanding, StandingStatus
from tests.browser.axe import serious_violations
from tests.browser.conftest import PASSWORD
from tests.browser.workspace_nav import keys_ready
from tests.factories import ContentItemFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

KEYS = {"violating": "1", "not_violating": "2"}
OTHER = {"violating": "not_violating", "not_violating": "violating"}
ONBOARDING = [
    ("onboarding one: you worthless idiot", "violating"),
    ("onboarding two: see you at practice", "not_violating"),
    ("onboarding three: go back where you came from", "violating"),
    ("onboarding four: congrats on the new job", "not_violating"),
]


@pytest.fixture
def world(reviewer, queue, policy, settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # answers resolve as they are submitted (see the module docstring)
    queue.members.add(reviewer)
    queue.onboarding_size = 2
    queue.onboarding_pass_mark = 1.0
    queue.pause_below_accuracy = 0.5
    queue.pause_window = 2
    queue.save()
    version = policy.current_version()
    golds = {
        text: gold_record(
            item_id=ContentItemFactory(text=text).pk,
            policy_version=version,
            labels=[label],
            source="adjudication",
            actor=SYSTEM,
        )
        for text, label in ONBOARDING
    }
    live = [
        ReviewTaskFactory(policy=policy, queue=queue, priority=5, item=ContentItemFactory(text="live one: hello")),
        ReviewTaskFactory(policy=policy, queue=queue, priority=1, item=ContentItemFactory(text="live two: bye")),
    ]
    for n, priority in ((1, 4), (2, 3)):
        item = ContentItemFactory(text=f"live-looking {n}: you clown")
        gold = gold_record(
            item_id=item.pk, policy_version=version, labels=["violating"], source="honeypot", actor=SYSTEM
        )
        task = ReviewTaskFactory(policy=policy, queue=queue, priority=priority, item=item, reason="honeypot")
        HoneypotCheck.objects.create(task=task, gold=gold)
    lead = User.objects.create_user(username="lead-browser", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return {"queue": queue, "golds": golds, "live": live, "lead": lead}


def press(page: Page, key: str) -> None:
    keys_ready(page)
    page.keyboard.press(key)


def answer_onboarding(page: Page, *, right: bool) -> None:
    """Answer the shown onboarding item with the keyboard, rightly or wrongly."""
    keys_ready(page)
    text = page.locator("#task-region .content-text").inner_text().strip()
    label = dict(ONBOARDING)[text]
    chosen = label if right else OTHER[label]
    press(page, KEYS[chosen])
    expect(page.locator(f'#annotate-form input[value="{chosen}"]')).to_be_checked()
    press(page, "Enter")


def answer_live(page: Page, text: str, label: str) -> None:
    expect(page.locator("#task-region .content-text")).to_have_text(text)
    press(page, KEYS[label])
    expect(page.locator(f'#annotate-form input[value="{label}"]')).to_be_checked()
    press(page, "Enter")


def switch_user(page: Page, log_in, user: User) -> None:  # type: ignore[no-untyped-def]
    page.context.clear_cookies()
    log_in(user)


def test_onboarding_auto_pause_and_requalification(page: Page, watch, screenshot, log_in, reviewer, world) -> None:
    queue, lead = world["queue"], world["lead"]
    region = page.locator("#task-region")
    log_in(reviewer)

    # The queue asks for onboarding: the workspace offers the set instead of live work.
    page.goto(f"/queues/{queue.pk}/work")
    expect(page.locator("#standing h2")).to_have_text("Onboarding first")
    expect(page.locator("#annotate-form")).to_have_count(0)
    screenshot("onboarding-offered")
    press(page, "Enter")  # the focused "Start the onboarding set" button
    expect(page.locator("#onboarding-progress")).to_have_text("Item 1 of 2")
    html = page.content()
    assert "onboarding-review" not in html and "Reference" not in html  # no reference before the end
    screenshot("onboarding-item")
    assert serious_violations(page) == []

    # Fail: both wrong. The result shows each answer beside the reference.
    answer_onboarding(page, right=False)
    expect(page.locator("#onboarding-progress")).to_have_text("Item 2 of 2")
    answer_onboarding(page, right=False)
    expect(page.locator("#onboarding-result h2")).to_have_text("Not passed yet: 0 of 2 right")
    rows = page.locator("#onboarding-review tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator(".answer")).to_have_text("Not violating")
    expect(rows.nth(0).locator(".reference")).to_have_text("Violating")
    screenshot("onboarding-failed")
    assert serious_violations(page) == []

    # Retry (Enter on the focused "Try again"): other items, answered right; then live work.
    press(page, "Enter")
    expect(page.locator("#onboarding-progress")).to_have_text("Item 1 of 2")
    expect(region.locator(".content-text")).to_have_text(ONBOARDING[2][0])
    answer_onboarding(page, right=True)
    answer_onboarding(page, right=True)
    expect(page.locator("#onboarding-result h2")).to_have_text("You passed: 2 of 2 right")
    screenshot("onboarding-passed")
    press(page, "Enter")  # Start reviewing
    answer_live(page, "live one: hello", "not_violating")
    # Two honeypots, both answered wrong: 0 of the last 2 right is below 50 %, so the reviewer is paused.
    answer_live(page, "live-looking 1: you clown", "not_violating")
    answer_live(page, "live-looking 2: you clown", "not_violating")
    expect(page.locator("#standing h2")).to_have_text("You are paused in this queue")
    expect(page.locator("#pause-reason")).to_contain_text("0 of your last 2 known-answer checks")
    expect(page.locator("#annotate-form")).to_have_count(0)
    screenshot("paused-in-workspace")
    assert serious_violations(page) == []
    standing = QueueStanding.objects.get(queue=queue, reviewer=reviewer)
    assert (standing.status, standing.automatic) == (StandingStatus.PAUSED, True)

    # The lead sees the pause on the reviewer list and on the reviewer's history page.
    switch_user(page, log_in, lead)
    page.goto("/lead/reviewers/")
    row = page.locator(f'#reviewers tr[data-reviewer="{reviewer.username}"]')
    expect(row).to_contain_text("paused (automatic)")
    expect(row.locator("td").nth(2)).to_contain_text("0 %")
    screenshot("lead-reviewer-list")
    assert serious_violations(page) == []
    row.get_by_role("link", name=reviewer.username).click()
    expect(page.locator("#standings")).to_contain_text("Automatic pause: 0 of your last 2")
    expect(page.locator("#standing-events")).to_contain_text("Paused (automatic)")
    expect(page.locator("#onboarding-attempts tbody tr")).to_have_count(2)
    expect(page.locator("#honeypot-checks tbody tr")).to_have_count(2)
    expect(page.locator("#recent-annotations tbody tr")).to_have_count(3)
    screenshot("lead-reviewer-history")
    assert serious_violations(page) == []

    # The reviewer re-qualifies through the onboarding set and works again.
    switch_user(page, log_in, reviewer)
    page.goto(f"/queues/{queue.pk}/work")
    expect(page.locator("#pause-reason")).to_be_visible()
    press(page, "Enter")
    expect(page.locator("#onboarding-progress")).to_have_text("Item 1 of 2")
    answer_onboarding(page, right=True)
    answer_onboarding(page, right=True)
    expect(page.locator("#onboarding-result h2")).to_have_text("You passed: 2 of 2 right")
    press(page, "Enter")
    answer_live(page, "live two: bye", "not_violating")
    expect(page.locator("#task-region .empty h2")).to_have_text("Nothing to review here right now")
    standing.refresh_from_db()
    assert standing.status == StandingStatus.ACTIVE and standing.qualified_at is not None
    assert [a.passed for a in OnboardingAttempt.objects.order_by("pk")] == [False, True, True]
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])


def test_a_lead_pauses_and_resumes_a_reviewer_from_the_reviewer_page(
    page: Page, watch, screenshot, log_in, reviewer, world
) -> None:
    queue, lead = world["queue"], world["lead"]
    queue.onboarding_size = 0
    queue.save()
    log_in(lead)
    page.goto(f"/lead/reviewers/{reviewer.pk}/")
    row = page.locator(f'#standings tr[data-queue="{queue.slug}"]')
    expect(row).to_contain_text("live")
    row.get_by_role("button", name="Pause").click()  # no reason: the form does not go
    expect(row).to_contain_text("live")
    assert not AuditEvent.objects.filter(action="standing.paused").exists()
    row.get_by_label("Reason").fill("Labels <b>too fast</b> on hate items; talk to me first")
    row.get_by_role("button", name="Pause").click()
    expect(page.locator("#standing-notice")).to_contain_text(f"{reviewer.username} paused")
    expect(row).to_contain_text("Labels <b>too fast</b> on hate items")  # shown as text, escaped
    expect(row.locator(".badge-danger")).to_have_text("paused")
    screenshot("lead-paused")

    switch_user(page, log_in, reviewer)
    page.goto(f"/queues/{queue.pk}/work")
    expect(page.locator("#pause-reason")).to_contain_text("Labels <b>too fast</b>")
    expect(page.locator("#standing")).to_contain_text("a lead resumes you")
    expect(page.locator("#start-form")).to_have_count(0)  # a lead's pause is not lifted by onboarding
    screenshot("reviewer-sees-leads-pause")

    switch_user(page, log_in, lead)
    page.goto(f"/lead/reviewers/{reviewer.pk}/")
    row.get_by_label("Reason").fill("Talked it through")
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge-success")).to_have_text("live")
    expect(page.locator("#standing-notice")).to_contain_text(f"{reviewer.username} resumed")
    expect(page.locator("#standing-events tbody tr")).to_have_count(2)  # updated out of band
    events = AuditEvent.objects.filter(object_type="reviewer").order_by("pk")
    assert [(e.action, e.actor_id) for e in events] == [("standing.paused", lead.pk), ("standing.resumed", lead.pk)]
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])
