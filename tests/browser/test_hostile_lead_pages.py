"""Hostile content on the lead pages: adjudication, gold history and quality show it as text only.

The same payloads as the reviewer workspace test are ingested through the real ingest service;
two reviewers disagree on each item with hostile rationales, so every item reaches a lead's
adjudication queue, and one decision with a hostile note makes gold. Then a lead walks every page
that shows the content or the reviewers' words, in Chromium, under the real CSP.
"""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.models import Adjudication, GoldLabel
from labeling.services.adjudication import adjudication_decide
from labeling.services.annotations import annotation_submit
from reviewapp.models import ReviewTask
from reviewapp.services.claims import task_claim_next
from tests.browser.conftest import PASSWORD
from tests.browser.test_hostile_content import (  # noqa: F401 (fixture)
    PAYLOADS,
    assert_nothing_ran,
    horizontal_overflow,
    hostile_queue,
)

pytestmark = pytest.mark.browser

SHOWN = ("script", "img-onerror", "polyglot-decoded", "bidi-and-zero-width", "long-token")


@pytest.fixture
def disputes(settings, hostile_queue):  # type: ignore[no-untyped-def]  # noqa: F811
    """Every hostile item disputed by two reviewers (hostile rationales); the first one decided by a lead."""
    settings.UNDO_WINDOW_SECONDS = 0
    queue, task_ids = hostile_queue
    queue.required_annotations = 2
    queue.save(update_fields=["required_annotations"])
    answers = ((["violating"], PAYLOADS["script"]), (["not_violating"], PAYLOADS["polyglot-decoded"]))
    for n, (labels, rationale) in enumerate(answers):
        reviewer = User.objects.create_user(username=f"hostile-rev-{n}")
        queue.members.add(reviewer)
        for _ in task_ids:
            claim = task_claim_next(reviewer=reviewer, queue=queue)
            assert claim is not None
            annotation_submit(
                task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels, rationale=rationale
            )
    lead = User.objects.create_user(username="hostile-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    open_ = list(Adjudication.objects.filter(task_id__in=task_ids, status="open").order_by("pk"))
    assert len(open_) == len(task_ids)
    gold = adjudication_decide(
        adjudication_id=open_[0].pk, lead=lead, labels=["violating"], note=PAYLOADS["svg-onload"]
    )
    return lead, open_, gold


def _payload_of(adjudication: Adjudication) -> str:
    item = ReviewTask.objects.select_related("item").get(pk=adjudication.task_id).item
    return item.external_id.split(":", 1)[0]  # "<payload name>:<payload>", or "evil-media:…"


def _check(page: Page, watch, path: str) -> None:  # type: ignore[no-untyped-def]
    response = page.goto(path)
    assert response is not None and response.status == 200, (path, response and response.status)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
    assert_nothing_ran(page, watch)
    assert horizontal_overflow(page) <= 0, f"{path} is wider than the window"


def test_lead_pages_show_hostile_content_as_text(page: Page, watch, log_in, screenshot, disputes) -> None:
    lead, adjudications, gold = disputes
    gold_adjudication = adjudications[0].pk
    log_in(lead)

    _check(page, watch, "/lead/adjudications/")
    screenshot("adjudication-list")
    body = page.locator("main")
    expect(body).to_contain_text(PAYLOADS["svg-onload"])  # the policy's name

    for adjudication in adjudications:
        name = _payload_of(adjudication)
        _check(page, watch, f"/lead/adjudications/{adjudication.pk}/")
        if name in SHOWN:
            expect(page.locator("main")).to_contain_text(PAYLOADS[name][:2000])
            screenshot(f"adjudication-{name}")
        # The reviewers' hostile rationales are on the page as text.
        expect(page.locator("main")).to_contain_text(PAYLOADS["script"])
        expect(page.locator("main")).to_contain_text(PAYLOADS["polyglot-decoded"])
        if adjudication.pk == gold_adjudication:
            continue  # decided: no controls left
        controls = page.locator('main form button[type="submit"]')
        assert controls.count() >= 1
        width = page.evaluate("window.innerWidth")
        for control in controls.all():
            box = control.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)

    _check(page, watch, f"/lead/gold/{gold.item_id}/{gold.policy_id}/")
    expect(page.locator("main")).to_contain_text(PAYLOADS["svg-onload"])  # the lead's note
    screenshot("gold-history")
    _check(page, watch, "/lead/quality/")
    _check(page, watch, "/")

    # The audit trail of an item is a download, never rendered as a page.
    audit = page.request.get(f"/items/{gold.item_id}/audit.jsonl")
    assert audit.status == 200
    assert audit.headers["content-type"] == "application/x-ndjson"
    assert audit.headers["content-disposition"].startswith("attachment;")
    assert audit.headers["x-content-type-options"] == "nosniff"
    records = [json.loads(line) for line in audit.text().splitlines()]
    assert PAYLOADS["svg-onload"] in repr(records)  # escaped only as JSON: the record is exact

    assert GoldLabel.objects.filter(item_id=gold.item_id).count() == 1
    assert watch.csp_violations == []
