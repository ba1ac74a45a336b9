"""A queue that mixes policies: number keys change meaning, so the switch must be seen and confirmed."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from labeling.models import Annotation
from tests.browser.workspace_nav import keys_ready, open_next_item
from tests.factories import ContentItemFactory, PolicyFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

HARASSMENT_SCHEMA = {
    "labels": [
        {"value": "violating", "title": "Violating"},
        {"value": "needs_context", "title": "Needs context"},
    ],
    "allow_multiple": False,
}
HATE_SCHEMA = {
    "labels": [
        {"value": "hateful", "title": "Hateful"},
        {"value": "counter_speech", "title": "Counter speech"},
    ],
    "allow_multiple": False,
}


@pytest.fixture
def mixed_policy_queue(review_queue):  # type: ignore[no-untyped-def]
    """Served in this order: a harassment item, then two hate items (2 means another label there)."""
    harassment = PolicyFactory(key="harassment-mixed", name="Harassment", version__label_schema=HARASSMENT_SCHEMA)
    hate = PolicyFactory(key="hate-mixed", name="Hate speech", version__label_schema=HATE_SCHEMA)
    items = [(harassment, "first: harassment item", 3.0), (hate, "second: hate item", 2.0), (hate, "third", 1.0)]
    return [
        ReviewTaskFactory(policy=policy, queue=review_queue, priority=priority, item=ContentItemFactory(text=text))
        for policy, text, priority in items
    ]


def test_a_policy_switch_holds_the_number_keys_until_confirmed(
    page: Page, watch, screenshot, log_in, reviewer, review_queue, mixed_policy_queue
) -> None:
    first, second, third = mixed_policy_queue
    content = page.locator(".content-text")
    switch = page.locator("#policy-switch")
    checked = page.locator('#annotate-form input[name="labels"]:checked')

    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    expect(content).to_have_text("first: harassment item")
    expect(switch).to_be_hidden()  # the first item of the session is no switch
    page.keyboard.press("2")
    expect(page.locator('#annotate-form input[value="needs_context"]')).to_be_checked()
    page.keyboard.press("Enter")

    expect(content).to_have_text("second: hate item")
    keys_ready(page)
    expect(switch).to_be_visible()
    expect(switch).to_contain_text("Policy changed")
    expect(switch).to_contain_text("2 Counter speech")
    screenshot("policy-changed")
    page.keyboard.press("2")  # a reflex from the last item: it must not pick "Counter speech"
    expect(checked).to_have_count(0)
    page.keyboard.press("Enter")  # confirms the new labels; submits nothing
    expect(switch).to_be_hidden()
    expect(checked).to_have_count(0)
    assert Annotation.objects.filter(task=second).count() == 0
    page.keyboard.press("2")
    expect(page.locator('#annotate-form input[value="counter_speech"]')).to_be_checked()
    page.keyboard.press("Enter")

    expect(content).to_have_text("third")
    keys_ready(page)
    expect(switch).to_be_hidden()  # same policy version as the item before
    page.keyboard.press("1")
    expect(page.locator('#annotate-form input[value="hateful"]')).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Nothing to review here right now")).to_be_visible()

    answers = {a.task_id: a.labels for a in Annotation.objects.all()}
    assert answers == {first.pk: ["needs_context"], second.pk: ["counter_speech"], third.pk: ["hateful"]}
    assert watch.csp_violations == []


def test_the_shortcuts_help_documents_the_confirmation(
    page: Page, watch, log_in, reviewer, review_queue, mixed_policy_queue
) -> None:
    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_contain_text("Policy changed")
