"""A reviewer decides an appeal with the keyboard, reading the user's statement and the contested action."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from labeling.models import Appeal, AppealStatus
from labeling.services.appeals import appeal_open
from reviewapp.audit import SYSTEM
from reviewapp.models import ModelDecision
from tests.browser.workspace_nav import keys_ready, start_reviewing
from tests.factories import ContentItemFactory, QueueFactory

pytestmark = pytest.mark.browser

STATEMENT = 'It was a joke between friends <script>alert(1)</script> "><img src=x onerror=alert(1)> \u202eok'


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # the answer decides the appeal at once


@pytest.fixture
def appealed(policy, reviewer):  # type: ignore[no-untyped-def]
    """An automatic action the user appealed, waiting in the appeals queue the reviewer works."""
    queue = QueueFactory(slug="appeals", name="Appeals", kind="appeals")
    queue.members.add(reviewer)
    item = ContentItemFactory(source="comments", external_id="c-1", text="see you at the match, clown")
    ModelDecision.objects.create(
        item=item,
        policy=policy,
        model_name="tox-bert",
        model_version="2026.11",
        score=0.97,
        predicted_label="violating",
        routing_outcome="auto_action",
        sampling_propensity=0.0,
    )
    appeal_open(
        source="comments",
        external_id="c-1",
        policy_key=policy.key,
        external_ref="ap-1",
        statement=STATEMENT,
        actor=SYSTEM,
    )
    return queue


def test_a_reviewer_reads_the_statement_and_overturns_the_appeal_with_the_keyboard(
    page: Page, watch, screenshot, log_in, reviewer, appealed
) -> None:
    log_in(reviewer)
    start_reviewing(page, appealed.pk)
    appeal = page.get_by_role("region", name="Appeal The user contests this outcome")
    expect(appeal).to_be_visible()
    expect(appeal.locator(".appeal-statement")).to_have_text(STATEMENT)
    expect(appeal).to_contain_text("Automatic action by model tox-bert version 2026.11 at score 0.97: Violating")
    expect(page.locator(".hidden-characters")).to_contain_text(
        "Hidden characters in the appeal statement: right-to-left override."
    )
    expect(page.locator(".content-text")).to_have_text("see you at the match, clown")
    expect(page.locator('#annotate-form input[name="labels"]').first).to_be_focused()
    screenshot("appeal-shown")

    keys_ready(page)
    page.keyboard.press("2")
    expect(page.locator('#annotate-form input[value="not_violating"]')).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.locator("#task-region .notice")).to_have_text("Saved.")
    expect(page.get_by_role("heading", name="Nothing to review here right now")).to_be_visible()
    screenshot("appeal-decided")

    appeal = Appeal.objects.get()
    assert appeal.status == AppealStatus.OVERTURNED and appeal.outcome_gold.labels == ["not_violating"]
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])
