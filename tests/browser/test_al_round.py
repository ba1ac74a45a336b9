"""A lead starts an active-learning round in Chromium and watches it finish, then a reviewer gets its items.

Everything is real: the live server, htmx polling the round's progress partial, a Celery worker on
the Redis broker retraining on gold from PostgreSQL, evaluation on held-out gold, promotion, pool
scoring and selection into the reviewers' queue.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from activelearning.models import PromotionDecision, SelectionRound, TrainingRun
from reviewapp.models import ContentItem, ReviewTask, TaskReason, TaskStatus
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files  # noqa: F401
from tests.browser.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.usefixtures("model_files")]

BUDGET = 12


def test_a_lead_starts_a_round_watches_it_and_a_reviewer_gets_the_chosen_items(
    transactional_db, celery_worker_process, page: Page, watch, log_in, screenshot
) -> None:
    policy, queue = al_policy()
    _, pool = load_items(policy, "convabuse", items=360, gold=280)
    lead = User.objects.create_user(username="al-lead", password=PASSWORD)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    reviewer = User.objects.create_user(username="al-reviewer", password=PASSWORD)
    queue.members.add(reviewer)

    log_in(lead)
    page.goto(f"/models/?policy={policy.key}")
    page.get_by_label("Encoder").select_option("hashed")
    page.get_by_label("Strategy").select_option("entropy")
    page.get_by_label("Items").fill(str(BUDGET))
    page.get_by_role("button", name="Start round").click()
    expect(page).to_have_url(re.compile(r"/models/rounds/\d+/$"))
    run = TrainingRun.objects.get(policy=policy)
    # The form has no test-only knobs; the API's tuning params keep training quick (a worker that
    # already started simply trains with the defaults, which is slower but the same path).
    TrainingRun.objects.filter(pk=run.pk).update(
        params={**run.params, **{k: FAST_ROUND[k] for k in ("num_buckets", "n_bootstrap", "head")}}
    )
    screenshot("round-started")

    # htmx swaps the progress partial in place: the page itself is never reloaded.
    page.evaluate("window.__sameDocument = true")
    progress = page.locator("#progress")
    expect(progress).to_contain_text(f"{BUDGET} items sent to", timeout=240_000)
    expect(progress).to_contain_text("Succeeded")
    assert page.evaluate("window.__sameDocument === true"), "the round page reloaded instead of polling"
    decision = PromotionDecision.objects.get(challenger__training_run=run)
    expect(progress.locator(".notice")).to_contain_text(decision.get_outcome_display())
    expect(progress.locator(".notice")).to_contain_text(decision.reasons[0][:60])
    expect(progress).to_contain_text("held-out macro-F1")
    polled = [u for u in watch.requests if u.endswith(f"/models/rounds/{run.pk}/")]
    assert len(polled) >= 2, "progress was never polled"
    expect(progress).not_to_have_attribute("hx-trigger", re.compile("every"))  # polling stops when done
    # The chosen items are listed by their text, most informative first, with why each was chosen.
    first = SelectionRound.objects.get(training_run=run).chosen[0]
    first_row = progress.locator("#chosen tbody tr").first
    expect(first_row).to_contain_text(ContentItem.objects.get(pk=first["item_id"]).text[:40].strip())
    expect(first_row).to_contain_text(f"Entropy: rank 1, uncertainty {first['uncertainty']:.3f}")
    expect(progress.locator("#chosen tbody tr")).to_have_count(BUDGET)
    screenshot("round-finished")

    # The models page shows the new version with its held-out metrics and the decision's reason.
    page.get_by_role("link", name=f"All models of {policy.name}").click()
    expect(page.get_by_role("cell", name=re.compile(r"violating"))).not_to_have_count(0)
    expect(page.locator("body")).to_contain_text(decision.reasons[0][:60])

    chosen = set(
        ReviewTask.objects.filter(reason=TaskReason.ACTIVE_LEARNING, queue=queue).values_list("item_id", flat=True)
    )
    assert len(chosen) == BUDGET and chosen <= set(pool)

    # A reviewer opening the queue gets one of the chosen items, rendered.
    page.context.clear_cookies()
    log_in(reviewer)
    page.goto(f"/queues/{queue.pk}/work")
    page.get_by_role("button", name="Start reviewing").click()  # claiming is a POST
    expect(page.locator("#task-region .task")).to_have_count(1)
    claimed = ReviewTask.objects.get(queue=queue, leased_by=reviewer, status=TaskStatus.OPEN)
    assert claimed.reason == TaskReason.ACTIVE_LEARNING and claimed.item_id in chosen
    expect(page.locator(".user-text").first).to_contain_text(claimed.item.text[:40].strip())
    screenshot("reviewer-gets-chosen-item")
    assert not watch.csp_violations and not watch.blocked_requests and not watch.dialogs
