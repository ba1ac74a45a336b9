"""The first hour of a new user, in Chromium, from the demo `make run` seeds.

Nothing is prepared by hand: `seed_demo` (the command `make run` runs) fills the database, its
logins file gives the passwords, a real Celery worker carries out the demo's round and the lead's
round, and every step goes through the pages or the REST API as a person or a script would:

1. a reviewer opens a queue and labels three items with the keyboard;
2. the lead adjudicates an open disagreement;
3. the lead decides an appeal whose statement is on the page;
4. the lead approves a threshold proposal of the demo's champion, starts a round with the default
   form, and the round page lists the items it chose, all of the round's policy, by their text;
5. the lead finds an item by its external id and opens its history;
6. the admin creates a token on the tokens page (its secret shown once), and that token creates a
   dataset over REST and downloads its first version.

Each page is photographed (test-artifacts/browser/, not committed) and checked: no bare error page,
no raw label key, no chart without a title, and no serious or critical axe-core (WCAG 2.2 AA)
violation in the light or the dark theme, on the demo's real content.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from activelearning.models import ModelStatus, ModelVersion, ThresholdProposal, TrainingRun
from labeling.models import Adjudication, Annotation, Appeal, AppealStatus, GoldLabel, Policy
from reviewapp.models import ContentItem, Queue, QueueKind
from tests.activelearning.test_django_helpers import model_files  # noqa: F401 (fixture)
from tests.browser import workspace_nav
from tests.browser.axe import serious_violations
from tests.worker import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow, pytest.mark.usefixtures("model_files")]

ROUND_TIMEOUT = 900  # seconds; a round on the demo's gold takes one to three minutes on a busy 2-core machine


def _logins(path: Path) -> dict[str, str]:
    """The logins file as `make run` leaves it: `user <name>: <password>` lines."""
    logins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        label, sep, secret = line.rpartition(": ")
        if sep and label.startswith("user "):
            logins[label.removeprefix("user ")] = secret
    return logins


def _raw_label_keys() -> set[str]:
    """Label and severity keys with a readable name of their own (`not_abusive` → "Not abusive"):
    a page must show the name, never the key."""
    keys: set[str] = set()
    for policy in Policy.objects.all():
        version = policy.current_version()
        if version is None:
            continue
        values = [*version.label_values, *version.label_schema.get("severity_levels", [])]
        keys.update(value for value in values if "_" in value)
    return keys


def _check_page(page: Page, raw_keys: set[str]) -> None:
    """What every page of the walk must be: not an error, no raw key, every chart titled."""
    main = page.locator("main")
    expect(main).to_be_visible()
    text = main.inner_text()
    assert "Traceback" not in text and "Server Error" not in text, page.url
    shown = {key for key in raw_keys if re.search(rf"(?<![\w-]){re.escape(key)}(?![\w-])", text)}
    assert not shown, f"{page.url} shows raw label keys {sorted(shown)}: " + " … ".join(
        text[max(0, text.find(key) - 80) : text.find(key) + 40] for key in shown
    )
    untitled = page.evaluate(
        """() => [...document.querySelectorAll('main svg')]
              .filter(svg => !svg.closest('[aria-hidden="true"]') && svg.getAttribute('aria-hidden') !== 'true')
              .filter(svg => !(svg.querySelector(':scope > title')?.textContent.trim()
                               || svg.getAttribute('aria-label') || svg.getAttribute('aria-labelledby')))
              .map(svg => svg.outerHTML.slice(0, 120))"""
    )
    assert not untitled, f"{page.url} has charts without a title: {untitled}"
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        serious = serious_violations(page)
        assert not serious, f"axe-core, {scheme} theme:\n" + "\n".join(serious)
    page.emulate_media(color_scheme="light")


def _log_in(page: Page, username: str, password: str) -> None:
    page.context.clear_cookies()
    page.goto("/accounts/login/")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()


def _confirm_policy_switch(page: Page) -> None:
    """When the next item is under another policy than the last, the workspace holds its labels
    until the reviewer confirms the new ones (Enter on the focused button)."""
    workspace_nav.keys_ready(page)
    if page.locator("#policy-switch").is_visible():
        expect(page.locator("#policy-switch-ack")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#policy-switch")).to_be_hidden()


def _label_names_whole(page: Page) -> None:
    """Each label's name in the label panel sits on one line or wraps between words, never inside one."""
    broken = page.evaluate(
        """() => [...document.querySelectorAll('#annotate-form .choice-title')].flatMap(title => {
            const node = [...title.childNodes].find(n => n.nodeType === 3 && n.textContent.trim());
            if (!node) return [];
            const range = document.createRange();
            const words = node.textContent.trim().split(/\\s+/);
            return words.filter(word => {
              const start = node.textContent.indexOf(word);
              range.setStart(node, start); range.setEnd(node, start + word.length);
              return range.getClientRects().length > 1;
            });
          })"""
    )
    assert not broken, f"label names broken inside a word: {broken}"


def _round_finished(policy: Policy, after: int = 0) -> TrainingRun | None:
    run = TrainingRun.objects.filter(policy=policy, pk__gt=after).order_by("-pk").first()
    return run if run is not None and not run.is_active else None


def test_a_new_user_gets_through_the_first_hour(
    page: Page, watch, screenshot, live_server, celery_worker_process, tmp_path: Path
) -> None:
    logins_file = tmp_path / "demo-logins.txt"
    out = io.StringIO()
    call_command("seed_demo", "--logins-file", str(logins_file), stdout=out)
    logins = _logins(logins_file)
    assert {"reviewer", "lead", "admin"} <= logins.keys(), out.getvalue()
    raw_keys = _raw_label_keys()

    # The demo's round trains a champion on the worker; a lead's first visit to /models/ finds it.
    demo_run = TrainingRun.objects.order_by("pk").first()
    assert demo_run is not None, "the demo queued no round"
    policy = demo_run.policy
    wait_for(lambda: _round_finished(policy), timeout=ROUND_TIMEOUT, interval=1.0)
    assert ModelVersion.objects.filter(policy=policy, status=ModelStatus.CHAMPION).exists(), demo_run.log

    # 1. The reviewer labels three items with the keyboard.
    _log_in(page, "reviewer", logins["reviewer"])
    _check_page(page, raw_keys)
    screenshot("reviewer-queues")
    queue = (
        Queue.objects.filter(members__username="reviewer", kind=QueueKind.REVIEW, tasks__status="open")
        .distinct()
        .order_by("pk")
        .first()
    )
    assert queue is not None
    workspace_nav.start_reviewing(page, queue.pk)
    _check_page(page, raw_keys)
    _label_names_whole(page)
    screenshot("reviewer-workspace")
    for done in range(1, 4):
        _confirm_policy_switch(page)
        page.keyboard.press("1")
        expect(page.locator('#annotate-form input[name="labels"]').first).to_be_checked()
        page.keyboard.press("Enter")
        try:
            wait_for(lambda n=done: Annotation.objects.filter(reviewer__username="reviewer").count() == n, timeout=30)
        finally:
            screenshot(f"reviewer-answer-{done}")
        expect(page.locator("#task-region .notice")).to_have_text("Saved.")
    assert Annotation.objects.filter(reviewer__username="reviewer").count() == 3

    # 2. The lead adjudicates an open disagreement.
    _log_in(page, "lead", logins["lead"])
    page.get_by_role("link", name="Adjudication").click()
    _check_page(page, raw_keys)
    screenshot("lead-adjudications")
    open_before = Adjudication.objects.filter(status="open").count()
    assert open_before > 0
    page.locator("main table a[href^='/lead/adjudications/']").first.click()
    expect(page.get_by_role("heading", name=re.compile("^Adjudicate"))).to_be_visible()
    _check_page(page, raw_keys)
    screenshot("lead-adjudication")
    workspace_nav.keys_ready(page)
    expect(page.locator('#annotate-form input[name="labels"]').first).to_be_focused()
    page.keyboard.press("1")
    expect(page.locator('#annotate-form input[name="labels"]').first).to_be_checked()
    page.keyboard.press("Enter")
    expect(page.get_by_text("Decided: the gold label is recorded.")).to_be_visible()
    assert Adjudication.objects.filter(status="open").count() == open_before - 1

    # 3. The lead decides an appeal; the user's statement is on the page.
    appeal = Appeal.objects.filter(status=AppealStatus.OPEN).order_by("pk").first()
    assert appeal is not None
    appeals_queue = Queue.objects.get(kind=QueueKind.APPEALS, is_active=True)
    page.goto("/")
    workspace_nav.start_reviewing(page, appeals_queue.pk)
    shown = Appeal.objects.get(task_id=int(page.locator("#task-region .task").get_attribute("data-task")))
    expect(page.get_by_role("heading", name="Appeal The user contests this outcome")).to_be_visible()
    expect(page.locator(".appeal-statement")).to_contain_text(shown.statement[:60])
    _confirm_policy_switch(page)
    _check_page(page, raw_keys)
    _label_names_whole(page)
    screenshot("lead-appeal")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    wait_for(lambda: Appeal.objects.get(pk=shown.pk).status != AppealStatus.OPEN, timeout=120)

    # 4. Approve a threshold proposal, then start a round with the default form.
    page.goto(f"/models/?policy={policy.key}")
    _check_page(page, raw_keys)
    screenshot("lead-models")
    proposal = ThresholdProposal.objects.filter(policy=policy, status="pending").order_by("-pk").first()
    assert proposal is not None
    page.locator(f"form[action$='/proposals/{proposal.pk}/approve'] button").click()
    expect(page.locator(".messages")).to_contain_text("Routing thresholds updated.")
    assert ThresholdProposal.objects.get(pk=proposal.pk).status == "approved"
    screenshot("lead-threshold-approved")
    last_run = TrainingRun.objects.order_by("-pk").first().pk
    page.get_by_role("button", name="Start round").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Round \d+"))).to_be_visible()
    wait_for(lambda: _round_finished(policy, after=last_run), timeout=ROUND_TIMEOUT, interval=1.0)
    chosen = page.locator("#chosen tbody tr")
    expect(chosen.first).to_be_visible(timeout=60_000)
    run = TrainingRun.objects.filter(policy=policy, pk__gt=last_run).get()
    assert run.status == "succeeded", run.error + run.log
    chosen_ids = [
        int(href.rsplit("/", 2)[-2])
        for href in chosen.locator("a[href^='/items/']").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    ]
    assert chosen_ids
    # Every chosen item is of the round's policy and is shown by its text.
    for item in ContentItem.objects.filter(pk__in=chosen_ids[:10]):
        expect(page.locator("#chosen")).to_contain_text(item.text[:40].strip())
    _check_page(page, raw_keys)
    screenshot("lead-round")

    # 5. Find an item by its external id and open its history.
    gold = GoldLabel.objects.filter(policy=policy).select_related("item").order_by("pk").first()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Items").click()
    page.get_by_label("External id").fill(gold.item.external_id)
    page.get_by_label("External id").press("Enter")
    results = page.get_by_role("table")
    expect(results.get_by_role("row")).to_have_count(2)  # the header and the one match
    _check_page(page, raw_keys)
    screenshot("lead-search")
    results.get_by_role("link", name=gold.item.external_id).click()
    expect(page.get_by_role("heading", name=f"Item {gold.item.external_id}")).to_be_visible()
    _check_page(page, raw_keys)
    screenshot("lead-item")
    page.get_by_role("link", name=f"Gold history under {policy.name}").click()
    expect(page.get_by_role("heading", name="Gold label history")).to_be_visible()
    expect(page.get_by_role("cell", name="v1", exact=True)).to_be_visible()
    _check_page(page, raw_keys)
    screenshot("lead-gold-history")

    # 6. The admin creates a token (secret shown once) that creates a dataset over REST and downloads it.
    _log_in(page, "admin", logins["admin"])
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tokens").click()
    _check_page(page, raw_keys)
    page.get_by_label("Name").fill("first-hour-export")
    page.get_by_label("export:write").check()
    page.get_by_label("export:read").check()
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("Secret").input_value()
    assert len(secret) >= 20
    _check_page(page, raw_keys)
    screenshot("admin-token")
    page.goto("/tokens/")
    assert secret not in page.content()
    expect(page.get_by_role("cell", name="first-hour-export", exact=True)).to_be_visible()

    api = page.context.request
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    created = api.post(
        f"{live_server.url}/api/v1/datasets/",
        headers=headers,
        data=json.dumps({"slug": "first-hour", "name": "First hour", "filters": {"policies": [policy.key]}}),
    )
    assert created.status == 201, created.text()
    version = wait_for(
        lambda: (
            (r := api.get(f"{live_server.url}/api/v1/datasets/first-hour/versions/1/", headers=headers)).ok and r.json()
        ),
        timeout=300,
        interval=1.0,
    )
    assert version["row_count"] > 0
    download = api.get(f"{live_server.url}/api/v1/datasets/first-hour/versions/1/export?format=jsonl", headers=headers)
    assert download.ok, download.text()
    rows = [json.loads(line) for line in download.text().splitlines() if line.strip()]
    assert len(rows) == version["row_count"]

    assert not watch.blocked_requests and not watch.csp_violations and not watch.dialogs
