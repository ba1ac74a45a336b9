"""A lead meets tied answers: nothing is pre-selected, and Enter alone records no gold label.

Focus starts on the first label, so a label pre-selected on a tie would become gold with one key
press. Reviewers answer through the real claim and submit services; consensus escalates each task
the production way (a 1–1 tie under the majority rule, a 2–2 tie between equally reliable
reviewers under the weighted rule). The lead works in Chromium with the keyboard, under the real
CSP and workspace.js.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.models import Adjudication, GoldLabel, ReviewerReliability
from labeling.services.annotations import annotation_submit
from reviewapp.models import Queue
from reviewapp.services.claims import task_claim_next
from tests.browser.conftest import PASSWORD
from tests.browser.workspace_nav import keys_ready
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, ReviewTaskFactory

pytestmark = pytest.mark.browser

# Keys people should never have to read: every label has a display name (one from its title, one
# made readable from a key without a title).
STRENGTH_SCHEMA = {
    "labels": [
        {"value": "very_strong", "title": "Very strong"},
        {"value": "not_strong", "title": "Not strong"},
        {"value": "somewhat_strong"},
    ],
    "allow_multiple": False,
    "severity_levels": [],
}
RAW_KEYS = ("very_strong", "not_strong", "somewhat_strong")


def _escalate(queue: Queue, policy, votes: list[str]) -> Adjudication:  # type: ignore[no-untyped-def]
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text=f"tied on {queue.slug}"))
    for n, label in enumerate(votes):
        reviewer = User.objects.get_or_create(username=f"tie-rev-{n}")[0]
        queue.members.add(reviewer)
        claim = task_claim_next(reviewer=reviewer, queue=queue)
        assert claim is not None and claim.task.pk == task.pk
        annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=[label])
    return Adjudication.objects.get(task=task)


@pytest.fixture
def ties(settings, transactional_db):  # type: ignore[no-untyped-def]
    """A 1–1 majority tie and a 2–2 weighted tie with equal reviewer weights, both open; and a lead."""
    settings.UNDO_WINDOW_SECONDS = 0  # resolve on submit
    policy = PolicyFactory(key="strength", version__label_schema=STRENGTH_SCHEMA)
    majority = QueueFactory(slug="ties-majority", required_annotations=2)
    weighted = QueueFactory(
        slug="ties-weighted", required_annotations=4, max_annotations=4, consensus_rule="weighted", min_confidence=0.8
    )
    one_one = _escalate(majority, policy, ["very_strong", "not_strong"])
    for n in range(4):
        ReviewerReliability.objects.create(
            reviewer=User.objects.get_or_create(username=f"tie-rev-{n}")[0],
            policy=policy,
            labels=["very_strong", "not_strong"],
            confusion=[[0.9, 0.1], [0.1, 0.9]],
            accuracy=0.9,
            n_items=200,
        )
    two_two = _escalate(weighted, policy, ["very_strong", "not_strong", "very_strong", "not_strong"])
    # The tie is what the consensus rules saw, and they still name a label for the record.
    assert one_one.reason == "disagreement" and one_one.proposed_labels
    assert two_two.reason == "low_confidence" and two_two.confidence == pytest.approx(0.5)
    assert two_two.proposed_labels
    lead = User.objects.create_user(username="tie-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return lead, [one_one, two_two]


def test_enter_on_a_tie_records_nothing_and_says_so(page: Page, watch, log_in, screenshot, ties) -> None:
    lead, tied = ties
    log_in(lead)
    for adjudication in tied:
        page.goto(f"/lead/adjudications/{adjudication.pk}/")
        labels = page.locator('#annotate-form input[name="labels"]')
        expect(labels.first).to_be_focused()
        expect(page.locator('#annotate-form input[name="labels"]:checked')).to_have_count(0)
        expect(page.locator("#no-default-note")).to_contain_text("No label is pre-selected")
        # The answers table names labels as people read them, never by schema key.
        answers = page.get_by_role("table", name="Reviewers' answers")
        expect(answers).to_contain_text("Very strong")
        expect(answers).to_contain_text("Not strong")
        for key in RAW_KEYS:
            expect(page.locator("main")).not_to_contain_text(key)
        expect(page.get_by_label("Somewhat strong")).to_have_count(1)
        screenshot(f"tie-{adjudication.reason}")

        page.keyboard.press("Enter")
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("Choose a label.")
        expect(alert).to_contain_text("Nothing was recorded.")
        expect(page.locator('#annotate-form input[name="labels"]:checked')).to_have_count(0)
        adjudication.refresh_from_db()
        assert adjudication.status == "open"
        assert not GoldLabel.objects.exists()

    # With a label chosen, Enter records it: the keyboard path still works (once the reloaded page
    # has its keyboard script).
    keys_ready(page)
    page.keyboard.press("2")
    expect(page.get_by_label("Not strong")).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Decided: the gold label is recorded.")).to_be_visible()
    assert list(GoldLabel.objects.values_list("labels", flat=True)) == [["not_strong"]]
    assert watch.csp_violations == [] and watch.blocked_requests == []
