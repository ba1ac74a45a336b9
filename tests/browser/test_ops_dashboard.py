"""A lead opens the operations dashboard in Chromium; its figures refresh in place as work arrives."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from playwright.sync_api import Page, expect

from reviewapp.ops import POLL_SECONDS
from tests.browser.conftest import PASSWORD
from tests.factories import ReviewTaskFactory

pytestmark = pytest.mark.browser


def test_a_lead_watches_the_queue_grow_without_reloading(
    transactional_db, policy, queue, page: Page, watch, log_in, screenshot
) -> None:
    cache.clear()  # counters left by earlier tests would add charts
    ReviewTaskFactory(policy=policy, queue=queue)
    lead = User.objects.create_user(username="ops-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])

    log_in(lead)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Operations").click()
    expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible()
    open_cell = page.locator("#ops-figures tr", has_text=queue.slug).locator("td").nth(1)
    expect(open_cell).to_have_text("1")
    assert page.locator("#ops-figures svg.chart").count() == 4  # activity; depth, age and SLA per queue
    screenshot("dashboard")

    page.evaluate("window.__sameDocument = true")
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    expect(open_cell).to_have_text("3", timeout=(POLL_SECONDS + 10) * 1000)
    assert page.evaluate("window.__sameDocument === true"), "the page reloaded instead of polling"
    assert watch.csp_violations == [] and watch.blocked_requests == [] and watch.dialogs == []
