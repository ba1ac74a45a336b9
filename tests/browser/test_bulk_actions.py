"""A policy lead searches items, requeues the open work of the whole result after a confirmation
that counts it, and finds one audit event per item naming the bulk action; posting the same
confirmation again changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import Page, expect

from reviewapp.models import AuditEvent, BulkAction, ReviewTask
from tests.browser.conftest import PASSWORD
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def lead(transactional_db) -> User:  # type: ignore[no-untyped-def]
    user = User.objects.create_user(username="bulk-lead", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


@pytest.fixture
def stuck_work(policy, queue):  # type: ignore[no-untyped-def]
    """Three open tasks on items about a raid, one held by a reviewer who left; one unrelated task."""
    ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(external_id="other", text="quiet day"))
    tasks = [
        ReviewTaskFactory(
            policy=policy, queue=queue, item=ContentItemFactory(external_id=f"raid-{n}", text=f"raid post {n}")
        )
        for n in range(3)
    ]
    ReviewTask.objects.filter(pk=tasks[0].pk).update(
        leased_by=UserFactory(username="gone-home"), lease_expires_at=timezone.now() + timedelta(hours=8)
    )
    return tasks


def test_a_lead_requeues_a_search_result_once_and_the_audit_names_the_bulk_action(
    page: Page, watch, log_in, screenshot, lead, stuck_work
) -> None:  # type: ignore[no-untyped-def]
    log_in(lead)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Items").click()
    page.get_by_label("Text contains").fill("raid post")
    page.get_by_label("Text contains").press("Enter")
    expect(page.get_by_role("table").get_by_role("row")).to_have_count(4)  # the header and three matches

    page.get_by_role("combobox", name="Bulk action").select_option(label="Requeue")
    page.get_by_role("button", name="Review bulk action").click()
    expect(page.get_by_text("Requeue: 3 open tasks")).to_be_visible()  # the confirmation counts them
    screenshot("confirmation")
    form = page.locator('form[action="/items/bulk/run"]')
    fields = {
        name: form.locator(f'input[name="{name}"]').input_value()
        for name in ("csrfmiddlewaretoken", "key", "query", "action")
    }
    page.get_by_role("button", name="Confirm: requeue 3 open tasks").click()

    expect(page.get_by_text("Requeue: 3 changed.")).to_be_visible()
    expect(page.get_by_role("heading", name="Bulk action")).to_contain_text("Requeue")
    bulk = BulkAction.objects.get()
    assert ReviewTask.objects.get(pk=stuck_work[0].pk).leased_by is None  # the stuck claim is cleared
    screenshot("result")

    # The same confirmation posted again (a retry, the back button): nothing runs twice.
    again = page.request.post("/items/bulk/run", form=fields)
    assert again.ok and "already applied" in again.text()
    assert BulkAction.objects.count() == 1

    page.goto(f"/items/{stuck_work[1].item_id}/")
    trail = page.get_by_role("table").filter(has_text="bulk.requeue")
    expect(trail.get_by_role("row").filter(has_text="bulk.requeue")).to_have_count(1)
    expect(trail.get_by_role("row").filter(has_text="bulk.requeue")).to_contain_text(f"bulk_action {bulk.pk}")
    screenshot("item-audit")
    per_item = [AuditEvent.objects.filter(action="bulk.requeue", item_id=t.item_id).count() for t in stuck_work]
    assert per_item == [1, 1, 1]
    assert watch.csp_violations == [] and watch.dialogs == [] and watch.blocked_requests == []
