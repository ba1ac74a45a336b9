"""An admin, and a policy lead, set up a queue with its members and route a model's decisions to it,
reading the estimate of the change on the last week of decisions before saving it; reviewers are
kept out of these pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import Page, expect

from reviewapp.models import AuditEvent, ModelDecision, Queue, RoutingOutcome, RoutingRule
from tests.browser.axe import serious_violations
from tests.browser.conftest import PASSWORD
from tests.factories import ContentItemFactory, QueueFactory, RoutingRuleFactory

pytestmark = pytest.mark.browser

# tox-bert's decisions of the last week. The policy's '*' rule (clear ≤ 0.2, action ≥ 0.9) routes
# them now; the proposed rule (clear ≤ 0.3, action ≥ 0.8, audit rates 0.5 and 0.25) would route:
#   0.1 cleared/cleared, 0.25 queued/cleared, 0.5 and 0.75 queued/queued, 0.85 queued/actioned,
#   0.95 actioned/actioned → current 1 actioned, 1 cleared, 4 queued; proposed 2, 2, 2, and
#   2 × 0.25 + 2 × 0.5 = 1.5 audit samples expected.
TOX_BERT_SCORES = (0.1, 0.25, 0.5, 0.75, 0.85, 0.95)


def decide(policy, model_name: str, score: float, *, days_ago: float = 1, outcome: str = "review") -> None:  # type: ignore[no-untyped-def]
    ModelDecision.objects.create(
        item=ContentItemFactory(),
        policy=policy,
        model_name=model_name,
        model_version="1",
        score=score,
        routing_outcome=outcome,
        sampling_propensity=1.0,
        received_at=timezone.now() - timedelta(days=days_ago),
    )


@pytest.fixture
def last_week(policy) -> None:  # type: ignore[no-untyped-def]
    RoutingRuleFactory(policy=policy, queue=QueueFactory(slug="general"), auto_clear=0.2, auto_action=0.9)
    for score in TOX_BERT_SCORES:
        decide(policy, "tox-bert", score)
    decide(policy, "tox-bert", 0.99, outcome=RoutingOutcome.SHADOW)  # a shadow decision routes nothing
    decide(policy, "tox-bert", 0.99, days_ago=8)  # older than the window
    decide(policy, "other-model", 0.95)  # another model: the '*' rule keeps it


def person(role: str) -> User:
    if role == "admin":
        return User.objects.create_superuser(username="ops-admin", password=PASSWORD)
    user = User.objects.create_user(username="ops-lead", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


def htmx_ready(page: Page) -> None:
    """Wait until htmx has taken over the page's forms (its deferred script ran, the page loaded):
    before that, a click submits the plain form, which works too but is not what is tested here."""
    page.wait_for_function("() => window.htmx !== undefined && document.readyState === 'complete'")


def estimate_row(page: Page, row: str) -> list[str]:
    return page.locator(f"#estimate-{row} td").all_inner_texts()


@pytest.mark.parametrize("role", ["admin", "lead"])
def test_a_queue_and_its_routing_are_set_up_from_the_product(
    page: Page, watch, screenshot, log_in, reviewer, policy, last_week, role: str
) -> None:
    log_in(person(role))
    page.goto("/lead/queues/")
    page.get_by_role("link", name="New queue").click()
    page.get_by_label("Slug").fill("tox-review")
    page.get_by_label("Name:", exact=True).fill("Toxicity review")
    page.get_by_label("Required annotations").fill("2")
    page.get_by_label("Max annotations").fill("1")
    page.get_by_role("button", name="Save queue").click()
    expect(page.locator(".errorlist")).to_contain_text("Cannot be below the required annotations (2)")
    page.get_by_label("Max annotations").fill("3")
    page.get_by_label("Adaptive").check()
    page.get_by_label("SLA (minutes)").fill("90")
    page.get_by_label("Honeypot rate").fill("0.05")
    page.get_by_label("Pause below accuracy").fill("0.6")
    page.get_by_role("button", name="Save queue").click()
    expect(page.get_by_role("heading", name="Queue Toxicity review")).to_be_visible()

    htmx_ready(page)
    page.get_by_label("Add reviewer by username").fill(reviewer.username)
    page.get_by_role("button", name="Add member").click()
    expect(page.locator("#members .notice")).to_have_text(f"{reviewer.username} added.")
    expect(page.locator("#member-list")).to_contain_text(reviewer.username)
    screenshot("queue-with-member")
    inaccessible = serious_violations(page)

    page.get_by_role("link", name="New routing rule into this queue").click()
    page.get_by_label("Policy").select_option(str(policy.pk))
    page.get_by_label("Model name").fill("tox-bert")
    page.get_by_label("Auto clear").fill("0.3")
    page.get_by_label("Auto action").fill("0.8")
    page.get_by_label("Audit rate clear").fill("0.5")
    page.get_by_label("Audit rate action").fill("0.25")
    htmx_ready(page)
    page.get_by_role("button", name="Preview effect").click()
    expect(page.locator("#estimate-scope")).to_contain_text("6 decisions of harassment by model tox-bert")
    expect(page.locator("#estimate-scope")).to_contain_text("Current: the policy's * rule.")
    assert estimate_row(page, "auto-actioned") == ["1", "2"]
    assert estimate_row(page, "auto-cleared") == ["1", "2"]
    assert estimate_row(page, "queued") == ["4", "2"]
    assert estimate_row(page, "audit") == ["0.0", "1.5"]
    screenshot("routing-estimate")
    inaccessible += serious_violations(page)
    page.get_by_role("button", name="Save rule").click()
    expect(page.get_by_role("heading", name="Routing rules")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text("Routing rule for Harassment · tox-bert created.")
    inaccessible += serious_violations(page)
    page.locator("main").get_by_role("link", name="Queues", exact=True).click()
    expect(page.locator("#queues")).to_contain_text("Toxicity review")
    inaccessible += serious_violations(page)
    assert inaccessible == []

    queue = Queue.objects.get(slug="tox-review")
    assert (queue.required_annotations, queue.max_annotations, queue.adaptive, queue.sla_minutes) == (2, 3, True, 90)
    assert (queue.honeypot_rate, queue.pause_below_accuracy) == (0.05, 0.6)
    assert list(queue.members.values_list("username", flat=True)) == [reviewer.username]
    rule = RoutingRule.objects.get(policy=policy, model_name="tox-bert")
    assert (rule.queue_id, rule.auto_clear, rule.auto_action, rule.audit_rate_clear, rule.audit_rate_action) == (
        queue.pk,
        0.3,
        0.8,
        0.5,
        0.25,
    )
    actions = set(AuditEvent.objects.filter(actor_label=f"ops-{role}").values_list("action", flat=True))
    assert actions == {"queue.created", "queue.member_added", "routing_rule.created"}
    assert (watch.dialogs, watch.blocked_requests, watch.csp_violations) == ([], [], [])


def test_a_reviewer_is_refused_the_queue_and_routing_pages(page: Page, log_in, reviewer, queue, routing_rule) -> None:
    log_in(reviewer)
    for path in ("/lead/queues/", "/lead/queues/new/", f"/lead/queues/{queue.pk}/", "/lead/routing/new/"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
