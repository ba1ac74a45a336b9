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


@pytest.fixture
def hostile_dataset(transactional_db, policy):  # type: ignore[no-untyped-def]
    """Two versions of a gold dataset; the second adds items whose ids and sources are payloads."""
    from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
    from labeling.services.gold import gold_record
    from reviewapp.audit import SYSTEM
    from tests.factories import ContentItemFactory

    def gold_for(source: str, external_id: str) -> None:
        item = ContentItemFactory(source=source[:100], external_id=external_id[:255])
        gold_record(
            item_id=item.pk,
            policy_version=policy.current_version(),
            labels=["violating"],
            source="adjudication",
            actor=SYSTEM,
        )

    gold_for("comments", "plain-1")
    dataset = dataset_create(
        slug="hostile",
        name=PAYLOADS["svg-onload"],
        description=PAYLOADS["script"],
        filters=SnapshotFilter(),
        actor=SYSTEM,
    )
    snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    for name in SHOWN:
        gold_for(PAYLOADS["img-onerror"], PAYLOADS[name])
    second = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    lead = User.objects.create_user(username="hostile-dataset-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return lead, dataset, second


def test_dataset_pages_show_hostile_ids_as_text(page: Page, watch, log_in, screenshot, hostile_dataset) -> None:
    lead, dataset, second = hostile_dataset
    log_in(lead)
    for path in (f"/lead/datasets/{dataset.slug}/", f"/lead/datasets/{dataset.slug}/v{second.version}/"):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert_nothing_ran(page, watch)
        assert horizontal_overflow(page) <= 0, f"{path} is wider than the window"
        screenshot(f"v{second.version}" if "/v" in path else "dataset")
    expect(page.locator("main")).to_contain_text(PAYLOADS["script"])  # an added item's id, in the diff
    expect(page.locator("main")).to_contain_text(PAYLOADS["img-onerror"])  # its source
    assert watch.csp_violations == []


@pytest.fixture
def hostile_online(transactional_db, settings):  # type: ignore[no-untyped-def]
    """Decisions whose model name, version, source and language are payloads, sent over the HTTP
    ingest API with audit sampling on, and an audit sample labelled: the online page and the drift
    section name all of them."""
    import uuid

    from django.test import Client

    from labeling.services.annotations import annotation_submit
    from reviewapp.audit import SYSTEM
    from reviewapp.models import RoutingRule
    from reviewapp.services.claims import task_claim_next
    from reviewapp.services.tokens import token_create

    settings.UNDO_WINDOW_SECONDS = 0
    policy, queue = al_policy("hostile")
    RoutingRule.objects.filter(policy=policy).update(audit_rate_action=0.5, audit_rate_clear=0.5)
    _, secret = token_create(name="hostile-upstream", scopes=["decisions:write"], actor=SYSTEM)
    rows = [
        {
            "source": PAYLOADS[("svg-onload", "bidi-and-zero-width")[i % 2]][:100],
            "external_id": f"h-{i}",
            "text": f"{PAYLOADS['polyglot-decoded']} {i}",
            "policy": policy.key,
            "model_name": PAYLOADS["script"][:100],
            "model_version": PAYLOADS["img-onerror"][:100],
            "score": (0.02, 0.5, 0.97)[i % 3],
            "metadata": {"language": PAYLOADS["long-token"][:200]},
        }
        for i in range(60)
    ]
    response = Client(HTTP_AUTHORIZATION=f"Bearer {secret}").post(
        "/api/v1/decisions", {"decisions": rows}, content_type="application/json"
    )
    assert response.status_code == 200, response.content[:500]
    reviewer = User.objects.create_user(username="hostile-auditor", password=PASSWORD)
    answered = 0
    while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
        labels = ["violating"] if answered % 3 else ["not_violating"]
        annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels)
        answered += 1
    assert answered
    lead = User.objects.create_user(username="hostile-online-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return lead, policy


def test_online_page_shows_hostile_model_names_as_text(page: Page, watch, log_in, screenshot, hostile_online) -> None:
    lead, policy = hostile_online
    log_in(lead)
    for path in (f"/models/{policy.key}/online", f"/models/?policy={policy.key}"):
        response = page.goto(path)
        assert response is not None and response.status == 200, path
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        page.locator("details").evaluate_all("details => details.forEach(d => { d.open = true; })")
        assert_nothing_ran(page, watch)
        assert horizontal_overflow(page) <= 0, f"{path} is wider than the window"
        screenshot(path.strip("/").replace("/", "-").split("?")[0])
    page.goto(f"/models/{policy.key}/online")
    main = page.locator("main")
    expect(main.get_by_role("heading", level=2).first).to_contain_text(PAYLOADS["script"][:100])
    expect(main).to_contain_text(PAYLOADS["img-onerror"][:100])
    expect(main.locator("td.precision").first).to_contain_text("audit-sample gold")
    assert watch.csp_violations == []
