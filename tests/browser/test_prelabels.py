"""LLM pre-labels in the workspace: "LLM suggests" with one key to accept, never on a blind queue,
and a hostile label title or LLM name stays text."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.llm.models import QueuePrelabels, SuggestionExposure
from labeling.models import Annotation, AnnotationSource
from tests.browser.conftest import PASSWORD
from tests.browser.workspace_nav import keys_ready, open_next_item
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, ReviewTaskFactory
from tests.llm.prelabels_data import llm_annotation, llm_reviewer, prelabels_on

pytestmark = pytest.mark.browser

HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
HOSTILE_SCHEMA = {
    "labels": [
        {"value": "violating", "title": f"Violating {HOSTILE}"},
        {"value": "not_violating", "title": "Not violating"},
    ],
    "allow_multiple": False,
}


@pytest.fixture
def hostile_policy(db):  # type: ignore[no-untyped-def]
    return PolicyFactory(key="prelabel-hostile", name="Harassment", version__label_schema=HOSTILE_SCHEMA)


def test_a_reviewer_accepts_the_llm_suggestion_with_one_key(
    page: Page, watch, screenshot, log_in, reviewer, review_queue, hostile_policy
) -> None:
    llm = llm_reviewer(hostile_policy, name=f"gemma {HOSTILE}")
    task = ReviewTaskFactory(
        policy=hostile_policy, queue=review_queue, priority=2, item=ContentItemFactory(text="first: you clown")
    )
    llm_annotation(llm, task, "violating")
    prelabels_on(review_queue, llm, fraction=0.9)
    # At 0.9 the draw shows it nine times in ten; the recorded draw is the truth, so it is recorded
    # here as "shown" and the test does not depend on the coin.
    SuggestionExposure.objects.create(
        task=task, reviewer=reviewer, shown=True, suggested_label="violating", llm_reviewer=llm
    )

    log_in(reviewer)
    open_next_item(page, review_queue.pk)
    suggestion = page.locator("#llm-suggestion")
    expect(suggestion).to_contain_text("LLM suggests:")
    expect(suggestion).to_contain_text("Machine")
    expect(suggestion.locator("strong")).to_have_text(f"Violating {HOSTILE}")  # the markup is text
    expect(suggestion).to_contain_text(f"gemma {HOSTILE}")
    expect(page.locator("#llm-suggestion img, #llm-suggestion script")).to_have_count(0)
    expect(page.locator("#task-region")).not_to_contain_text("suggestion_for")  # no template comment leaks
    expect(page.locator("#shortcuts")).to_contain_text("accept the LLM's suggestion")
    screenshot("suggestion")

    violating = page.locator('#annotate-form input[name="labels"][value="violating"]')
    expect(violating).not_to_be_checked()
    page.keyboard.press("a")
    expect(violating).to_be_checked()
    expect(page.locator("#suggestion-accepted")).to_have_value("1")
    assert not Annotation.objects.filter(task=task).exclude(source=AnnotationSource.LLM).exists()  # not submitted
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Nothing to review here right now")).to_be_visible()

    answer = Annotation.objects.get(task=task, reviewer=reviewer)
    assert answer.labels == ["violating"]
    assert SuggestionExposure.objects.get(task=task).accepted_with_key
    assert watch.dialogs == [] and watch.csp_violations == [] and watch.blocked_requests == []


def test_a_blind_queue_shows_no_suggestion_even_when_its_settings_say_so(
    page: Page, watch, log_in, reviewer, policy
) -> None:
    blind = QueueFactory(slug="blind-prelabels", name="Blind review", blind_review=True)
    blind.members.add(reviewer)
    llm = llm_reviewer(policy)
    task = ReviewTaskFactory(policy=policy, queue=blind, item=ContentItemFactory(text="blind item"))
    llm_annotation(llm, task, "violating")
    prelabels_on(blind, llm, fraction=0.9)  # written past the service, which refuses blind queues

    log_in(reviewer)
    open_next_item(page, blind.pk)
    expect(page.locator(".content-text")).to_have_text("blind item")
    expect(page.locator("#llm-suggestion")).to_have_count(0)
    expect(page.get_by_text("LLM suggests")).to_have_count(0)
    keys_ready(page)
    page.keyboard.press("a")
    expect(page.locator('#annotate-form input[name="labels"]:checked')).to_have_count(0)
    assert not SuggestionExposure.objects.exists()
    assert watch.csp_violations == []


def test_a_lead_enables_pre_labels_and_a_blind_queue_says_why_not(
    page: Page, watch, screenshot, log_in, review_queue, policy
) -> None:
    lead = User.objects.create_user(username="lead-prelabels", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    blind = QueueFactory(slug="blind-settings", name="Blind settings", blind_review=True)
    ReviewTaskFactory(policy=policy, queue=review_queue)
    llm = llm_reviewer(policy, name="gemma-local")

    log_in(lead)
    page.goto("/lead/prelabels/")
    expect(page.locator(f"#prelabels-refusal-{blind.pk}")).to_contain_text("Blind queue")
    section = page.locator(f"#prelabels-queue-{review_queue.pk}")
    section.get_by_label("LLM reviewer").select_option(label="gemma-local")
    section.get_by_label("Show suggestions to reviewers").check()
    section.get_by_label("Share of eligible tasks that show the suggestion").fill("0.9")
    section.get_by_role("button", name="Save pre-labels").click()
    expect(page.get_by_text(f"Pre-labels of {review_queue.name} saved.")).to_be_visible()
    expect(section).to_contain_text("suggests on 90 % of eligible tasks")
    screenshot("settings")
    settings = QueuePrelabels.objects.get(queue=review_queue)
    assert (settings.reviewer, settings.enabled, settings.suggest_fraction) == (llm, True, 0.9)
    assert watch.csp_violations == []
