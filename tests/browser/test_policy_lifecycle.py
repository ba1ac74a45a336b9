"""A lead drafts, reviews, diffs and publishes a policy version with a stratified re-review; the
re-review's before/after shows on the policy page; a reviewer is told once what changed."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.models import PolicyDraft
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM
from reviewapp.models import ReviewTask, TaskReason
from reviewapp.services.claims import task_claim_next
from tests.browser.axe import serious_violations
from tests.browser.conftest import PASSWORD
from tests.browser.workspace_nav import keys_ready, start_reviewing
from tests.factories import ContentItemFactory, QueueFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

V, N = "violating", "not_violating"
NEW_SCHEMA = {
    "labels": [
        {"value": V, "title": "Harassing", "description": "Attacks or mocks a person."},
        {"value": N, "title": "Not violating"},
        {"value": "threat", "title": "Threat"},
    ],
    "allow_multiple": False,
    "severity_levels": ["low", "medium", "high"],
}
SUMMARY = "New label Threat; renamed Violating → Harassing; guideline text changed (+2/−0 lines)."


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def lead(transactional_db) -> User:  # type: ignore[no-untyped-def]
    user = User.objects.create_user(username="lead-browser", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def relabel_world(policy):  # type: ignore[no-untyped-def]
    """Six items with gold under v1 (4 violating, 2 not), and a relabel queue worked by two people."""
    for label in [V, V, V, V, N, N]:
        gold_record(
            item_id=ContentItemFactory().pk,
            policy_version=policy.current_version(),
            labels=[label],
            source="adjudication",
            actor=SYSTEM,
        )
    queue = QueueFactory(slug="relabel", name="Relabel", required_annotations=2, max_annotations=2)
    relabellers = [User.objects.create_user(username=f"relabeller{i}") for i in range(2)]
    queue.members.add(*relabellers)
    return queue, relabellers


def answer_all(queue, reviewers, answer: str) -> int:  # type: ignore[no-untyped-def]
    given = 0
    for reviewer in reviewers:
        while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
            annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[answer])
            given += 1
    return given


def test_a_lead_publishes_a_new_version_and_a_reviewer_is_told_once(
    page: Page, watch, screenshot, log_in, lead, reviewer, policy, review_queue, relabel_world
) -> None:
    relabel_queue, relabellers = relabel_world
    for text in ("first under the new version", "second under the new version"):
        ReviewTaskFactory(policy=policy, queue=review_queue, item=ContentItemFactory(text=text))

    # The lead writes the draft: guideline and label schema.
    a11y: list[str] = []
    log_in(lead)
    page.goto("/lead/policies/")
    page.get_by_role("link", name=policy.name).click()
    a11y += serious_violations(page)
    page.get_by_role("link", name="New draft").first.click()
    page.locator("#id_title").fill("Name mockery and threats")
    guideline = page.get_by_label("Guideline")
    guideline.fill(guideline.input_value() + "\n\nMocking someone's name is harassment.")
    page.get_by_role("button", name="Preview the guideline").click()
    expect(page.locator("#guideline-preview")).to_contain_text("Mocking someone's name is harassment.")
    # Label rows: retitle and define "violating", add "threat".
    page.get_by_label("Label 1 title").fill("Harassing")
    page.get_by_label("Label 1 description").fill("Attacks or mocks a person.")
    page.get_by_label("Label 3 value").fill("threat")
    page.get_by_label("Label 3 title").fill("Threat")
    page.get_by_label("Label 3 position").fill("3")
    screenshot("draft-form")
    a11y += serious_violations(page)
    page.get_by_role("button", name="Save draft").click()

    # The draft page shows the diff against v1; the lead sends it for review.
    diff = page.locator("#policy-diff")
    expect(diff).to_contain_text("Changes from v1 to this draft")
    expect(diff.locator("#schema-diff")).to_contain_text("Violating → Harassing")
    expect(diff.locator("#schema-diff")).to_contain_text("added Threat")
    expect(diff.locator("#guideline-diff")).to_contain_text("Mocking someone's name is harassment.")
    assert PolicyDraft.objects.get().label_schema["labels"] == NEW_SCHEMA["labels"]
    screenshot("draft")
    a11y += serious_violations(page)
    page.get_by_role("button", name="Send for review").click()
    expect(page.locator("#draft-status")).to_have_text("in review")

    # Publish with a stratified sample of 3 in the relabel queue.
    page.get_by_role("link", name="Publish…").click()
    expect(page.locator("#no-evaluation")).to_be_visible()
    page.get_by_label("Re-review a stratified sample").check()
    page.get_by_label("Sample size").fill("3")
    page.get_by_label("Queue for re-review tasks").select_option(label="Relabel (relabel)")
    screenshot("publish")
    a11y += serious_violations(page)
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.locator(".messages")).to_contain_text("Published as harassment v2; 3 re-review tasks opened.")
    versions = page.locator("#versions")
    expect(versions).to_contain_text(SUMMARY)
    expect(versions).to_contain_text("Re-review a stratified sample: 3 tasks (sample of 3) in Relabel")
    expect(page.locator(".relabel-comparison")).to_contain_text("None of the 3 re-review tasks has been decided yet.")

    # The diff between the two versions.
    page.get_by_role("link", name="v1 → v2").click()
    expect(page.get_by_role("heading", name="Changes from v1 to v2")).to_be_visible()
    expect(page.locator("#schema-diff")).to_contain_text("Violating → Harassing")
    a11y += serious_violations(page)

    # The re-review is answered (2 violating + 1 not violating sampled; everyone says not violating).
    assert ReviewTask.objects.filter(reason=TaskReason.RELABEL).count() == 3
    assert answer_all(relabel_queue, relabellers, N) == 6
    page.goto(f"/lead/policies/{policy.key}/")
    comparison = page.locator("#relabel-2")
    expect(page.locator(".relabel-comparison")).to_contain_text(
        "3 items re-decided under v2 of 3 sent; 2 changed label."
    )
    expect(comparison.get_by_role("row", name="Harassing")).to_contain_text("0.667 [0.208, 0.939] n=2")
    expect(comparison.get_by_role("row", name="Not violating")).to_contain_text("1.000 [0.439, 1.000] n=3")
    screenshot("before-after")
    a11y += serious_violations(page)
    assert a11y == []

    # The reviewer: "Policy updated: …" on the first task under v2, not on the next one.
    page.context.clear_cookies()
    log_in(reviewer)
    start_reviewing(page, review_queue.pk)
    notice = page.locator("#policy-notice")
    expect(notice).to_contain_text(f"Policy updated: {SUMMARY}")
    screenshot("reviewer-notice")
    page.keyboard.press("2")
    expect(page.locator('#annotate-form input[value="not_violating"]')).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.locator(".content-text")).to_contain_text("under the new version")
    keys_ready(page)
    expect(page.locator("#task-region .task")).to_have_count(1)
    expect(notice).to_have_count(0)
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])
