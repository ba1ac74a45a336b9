"""A policy lead brings the local LLM into the loop, in Chromium, on real crowd-labelled data.

ConvAbuse's per-annotator labels come in through the crowd import (gold by consensus, the
annotators as reviewers); a real Celery worker runs every LLM job on the bundled Gemma 3 270M.
Through the pages only, the lead:

1. configures the local LLM reviewer for the abuse policy and runs it on 200 gold items, and sees
   it on the quality page beside the human reviewers: kappa with them, alpha with and without it,
   and its confusion matrix;
2. turns on pre-labels for a non-blind queue, has the LLM label that queue's open tasks, and after
   a reviewer has worked the queue (accepting some suggestions with the key) sees the accuracy
   with and without a suggestion;
3. writes a policy draft, evaluates it with the LLM reviewer and sees the items that flip.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from labeling.llm.models import LLMReviewer, LLMRun, RunKind, RunStatus, SuggestionExposure
from labeling.models import Annotation, AnnotationSource, GoldLabel, Policy
from labeling.services.crowd import dataset_import_annotations
from reviewapp.audit import SYSTEM
from reviewapp.models import ConsensusRule, Queue, ReviewTask, TaskReason, TaskStatus
from tests.browser import workspace_nav
from tests.browser.conftest import PASSWORD
from tests.factories import ReviewTaskFactory
from tests.worker import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]

# First use converts the packaged model (a minute or more on two busy cores), then ~4 items/s.
RUN_TIMEOUT = 900
IMPORTED = 330
QUEUE_TASKS = 12


def _lead() -> User:
    lead = User.objects.create_user(username="llm-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return lead


def _log_in(page: Page, user: User) -> None:
    page.context.clear_cookies()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()


def _run_done(kind: str) -> LLMRun | None:
    run = LLMRun.objects.filter(kind=kind).order_by("-pk").first()
    return run if run is not None and run.status not in (RunStatus.QUEUED, RunStatus.RUNNING) else None


def _review_queue(policy: Policy, reviewer: User) -> Queue:
    """A non-blind queue of re-review tasks on gold items (an audit of crowd gold): the reviewer's
    answers are then measured against gold that they did not make (no automatic gold here)."""
    queue = Queue.objects.create(
        slug="abuse-rereview",
        name="Abuse re-review",
        required_annotations=1,
        auto_gold=False,
        consensus_rule=ConsensusRule.MAJORITY,
    )
    queue.members.add(reviewer)
    gold_items = GoldLabel.objects.filter(policy=policy).order_by("item_id").values_list("item_id", flat=True)
    for item_id in list(gold_items)[-QUEUE_TASKS:]:
        ReviewTaskFactory(policy=policy, queue=queue, item_id=item_id, reason=TaskReason.RELABEL)
    return queue


def test_a_lead_measures_the_local_llm_uses_its_suggestions_and_evaluates_a_draft(
    page: Page, watch, screenshot, live_server, celery_worker_process, convabuse_dir
) -> None:
    dataset_import_annotations(fmt="convabuse", path=convabuse_dir, actor=SYSTEM, limit=IMPORTED)
    policy = Policy.objects.get(key="abuse")
    assert GoldLabel.objects.filter(policy=policy).count() >= 200
    lead = _lead()
    reviewer = User.objects.create_user(username="llm-rev", password=PASSWORD)
    queue = _review_queue(policy, reviewer)

    # 1. Configure the local LLM reviewer and run it on 200 gold items.
    _log_in(page, lead)
    page.get_by_role("link", name="LLM reviewers").click()
    page.get_by_role("link", name="New LLM reviewer").click()
    page.locator("#id_name").fill("Gemma local")
    page.locator("#id_policy").select_option(value=str(policy.pk))
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", name="LLM reviewer Gemma local")).to_be_visible()
    llm = LLMReviewer.objects.get(name="Gemma local")
    assert (llm.backend, llm.policy_version) == ("local", policy.current_version())
    screenshot("llm-reviewer")
    run_form = page.locator("#run-gold")
    expect(run_form.locator('input[name="n"]')).to_have_value("200")
    run_form.get_by_role("button", name="Run on gold items").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Run \d+: Gemma local"))).to_be_visible()
    wait_for(lambda: _run_done(RunKind.GOLD_SAMPLE), timeout=RUN_TIMEOUT, interval=1.0)
    run = LLMRun.objects.get(kind=RunKind.GOLD_SAMPLE)
    assert run.status == RunStatus.DONE, run.error
    assert run.items_done == 200 and len(run.item_ids) == 200
    answered = Annotation.objects.filter(reviewer=llm.account, source=AnnotationSource.LLM).count()
    assert answered == 200 - run.items_abstained
    expect(page.locator("main")).to_contain_text(re.compile(r"Done", re.I), timeout=30_000)
    screenshot("llm-run-done")

    page.goto(f"/lead/quality/?policy={policy.key}")
    section = page.locator("#llm-beside-humans")
    expect(section).to_contain_text("Gemma local")
    expect(section).to_contain_text(re.compile(r"kappa|κ", re.I))
    expect(section).to_contain_text(re.compile(r"alpha|α", re.I))
    confusion_caption = page.locator("caption", has_text=re.compile("confusion", re.I))
    expect(section.locator("table", has=confusion_caption)).to_have_count(1)
    expect(section.locator("table", has=confusion_caption)).to_contain_text("Not abusive")
    # The people's kappa with the LLM is listed per reviewer, by the crowd annotators' names.
    expect(section).to_contain_text("ca-")
    section.scroll_into_view_if_needed()
    screenshot("quality-llm-beside-humans")

    # 2. Pre-labels on the non-blind queue; the LLM labels its open tasks; a reviewer works it.
    page.goto("/lead/prelabels/")
    form = page.locator(f"form[action$='/lead/prelabels/{queue.pk}/']")
    form.locator(f'select[name="q{queue.pk}-reviewer"]').select_option(value=str(llm.pk))
    form.locator(f'input[name="q{queue.pk}-enabled"]').check()
    form.locator(f'input[name="q{queue.pk}-suggest_fraction"]').fill("0.5")
    form.get_by_role("button").click()
    expect(page.locator(f"#prelabels-queue-{queue.pk}")).to_contain_text("suggests on 50 % of eligible tasks")
    page.goto(f"/lead/llm/{llm.pk}/")
    queue_form = page.locator("#run-queue")
    queue_form.locator('select[name="queue"]').select_option(label=queue.name)
    queue_form.get_by_role("button", name="Label open tasks").click()
    wait_for(lambda: _run_done(RunKind.QUEUE), timeout=RUN_TIMEOUT, interval=1.0)
    assert LLMRun.objects.get(kind=RunKind.QUEUE).status == RunStatus.DONE
    # The LLM's answers fill no human's place: every task is still open.
    assert ReviewTask.objects.filter(queue=queue, status=TaskStatus.OPEN).count() == QUEUE_TASKS

    _log_in(page, reviewer)
    workspace_nav.start_reviewing(page, queue.pk)
    for _ in range(QUEUE_TASKS):
        workspace_nav.keys_ready(page)
        if page.locator("#llm-suggestion").is_visible():
            page.keyboard.press("a")  # accept the LLM's suggestion
        else:
            page.keyboard.press("1")
        page.keyboard.press("Enter")
        expect(page.locator("#task-region")).not_to_contain_text("Saving", timeout=10_000)
    expect(page.get_by_role("heading", name="Nothing to review here right now")).to_be_visible(timeout=30_000)
    assert Annotation.objects.filter(reviewer=reviewer, task__queue=queue).count() == QUEUE_TASKS
    assert SuggestionExposure.objects.filter(reviewer=reviewer).count() == QUEUE_TASKS
    screenshot("reviewer-done")

    _log_in(page, lead)
    page.goto(f"/lead/quality/?policy={policy.key}")
    bias = page.locator("section.automation-bias")
    expect(bias).to_contain_text("Suggestion shown")
    expect(bias).to_contain_text("Not shown")
    expect(bias).to_contain_text(f"{QUEUE_TASKS} draws recorded")
    bias.scroll_into_view_if_needed()
    screenshot("quality-automation-bias")

    # 3. A policy draft, evaluated by the LLM reviewer on gold, and the items that flip.
    page.goto("/lead/drafts/")
    page.get_by_role("link", name=f"New draft of {policy.name}").click()
    page.locator("#id_title").fill("Profanity counts as abuse")
    page.locator("#id_guideline").fill(
        "Any message that contains a swear word, a rude word, an insult or a sexual reference is abusive, "
        "whoever it is aimed at. Only polite messages are not abusive."
    )
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_role("heading", name=re.compile("^Draft of"))).to_be_visible()
    page.locator("#eval-n").fill("60")
    page.get_by_role("button", name="Evaluate on the gold sample").click()
    wait_for(lambda: _run_done(RunKind.DRAFT), timeout=RUN_TIMEOUT, interval=1.0)
    assert LLMRun.objects.get(kind=RunKind.DRAFT).status == RunStatus.DONE
    page.reload()
    expect(page.locator("#measured-on")).to_contain_text("60")
    flipped = page.locator("#flips tbody tr")
    expect(flipped.first).to_be_visible()
    assert flipped.count() >= 1
    screenshot("draft-evaluation")
    assert watch.dialogs == [] and watch.csp_violations == []
