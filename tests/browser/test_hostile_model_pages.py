"""Hostile metadata on the model pages: slice values and round logs are shown as text only.

Slices are named by item metadata (language, region, source…), which upstream sends with each
decision, and a round's log and error quote what it met; both reach the lead's pages.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from activelearning.models import ModelVersion, TrainingRun
from tests.activelearning.test_django_helpers import al_policy, permission_objects
from tests.browser.conftest import PASSWORD
from tests.browser.test_hostile_content import PAYLOADS, assert_nothing_ran, horizontal_overflow

pytestmark = pytest.mark.browser

SHOWN = ("script", "img-onerror", "svg-onload", "polyglot-decoded", "bidi-and-zero-width", "long-token")


@pytest.fixture
def hostile_model(transactional_db):  # type: ignore[no-untyped-def]
    policy, _ = al_policy("hostile")
    ids = permission_objects(policy)
    slices = [{"value": PAYLOADS[name], "n": 40, "macro_f1": 0.5, "eligible": True} for name in SHOWN]
    ModelVersion.objects.filter(pk=ids["model_id"]).update(
        metrics={
            "n": 240,
            "macro_f1": 0.5,
            "per_class": [],
            "slices": [{"key": PAYLOADS["script"], "slices": slices, "worst_value": PAYLOADS["img-onerror"]}],
        }
    )
    TrainingRun.objects.filter(pk=ids["run_id"]).update(
        log="\n".join(PAYLOADS[name] for name in SHOWN), error=PAYLOADS["polyglot-decoded"]
    )
    lead = User.objects.create_user(username="hostile-model-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return lead, policy, ids


def test_model_pages_show_hostile_metadata_as_text(page: Page, watch, log_in, screenshot, hostile_model) -> None:
    lead, policy, ids = hostile_model
    log_in(lead)
    for path in (f"/models/?policy={policy.key}&version={ids['model_id']}", f"/models/rounds/{ids['run_id']}/"):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        page.locator("details").evaluate_all("details => details.forEach(d => { d.open = true; })")
        assert_nothing_ran(page, watch)
        assert horizontal_overflow(page) <= 0, f"{path} is wider than the window"
        main = page.locator("main")
        for name in ("script", "img-onerror", "svg-onload"):
            expect(main).to_contain_text(PAYLOADS[name])
        screenshot(path.split("/")[2] or "models")
    assert watch.csp_violations == []
