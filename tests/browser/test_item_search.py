"""A policy lead finds an item by its external id, opens its record and follows it to its gold history."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.models import GoldSource
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM
from tests.browser.conftest import PASSWORD
from tests.factories import ContentItemFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def lead(transactional_db) -> User:  # type: ignore[no-untyped-def]
    user = User.objects.create_user(username="search-lead", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def labelled_item(lead, policy):  # type: ignore[no-untyped-def]
    for n in range(3):
        ContentItemFactory(external_id=f"other-{n}", text="nothing to see")
    item = ContentItemFactory(external_id="needle-42", text='a <b>bold</b> "claim" \u202egnp.exe')
    version = policy.current_version()
    for labels in (["not_violating"], ["violating"]):
        gold_record(
            item_id=item.pk, policy_version=version, labels=labels, source=GoldSource.ADJUDICATION, actor=SYSTEM
        )
    return item


def test_a_lead_finds_an_item_by_external_id_and_opens_its_gold_history(
    page: Page, watch, log_in, screenshot, lead, labelled_item
) -> None:  # type: ignore[no-untyped-def]
    log_in(lead)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Items").click()
    expect(page.get_by_role("heading", name="Items", exact=True)).to_be_visible()
    page.get_by_label("External id").fill("needle-42")
    page.get_by_label("External id").press("Enter")
    results = page.get_by_role("table")
    expect(results.get_by_role("row")).to_have_count(2)  # the header and the one match
    screenshot("search-results")

    results.get_by_role("link", name="needle-42").click()
    expect(page.get_by_role("heading", name="Item needle-42")).to_be_visible()
    expect(page.get_by_text('a <b>bold</b> "claim"')).to_be_visible()  # the content, as text
    expect(page.get_by_text("right-to-left override")).to_be_visible()
    screenshot("item-page")

    page.get_by_role("link", name="Gold history under Harassment").click()
    expect(page.get_by_role("heading", name="Gold label history")).to_be_visible()
    expect(page.get_by_role("cell", name="v2", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="v1", exact=True)).to_be_visible()
    screenshot("gold-history")
    assert watch.csp_violations == [] and watch.dialogs == [] and watch.blocked_requests == []
