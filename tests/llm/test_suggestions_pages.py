"""The pre-labels settings page, the workspace's suggestion and the quality page's automation-bias section."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from labeling.llm.models import QueuePrelabels, SuggestionExposure
from labeling.models import Annotation, GoldLabel
from reviewapp.models import AuditEvent, ReviewTask
from tests.factories import PolicyFactory, QueueFactory, ReviewTaskFactory, UserFactory
from tests.llm.prelabels_data import llm_annotation, llm_reviewer, prelabels_on

pytestmark = pytest.mark.django_db
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    return client


@pytest.fixture
def person(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="rev-page")
    queue.members.add(user)
    return user


@pytest.fixture
def reviewer_client(person) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(person)
    return client


@pytest.fixture
def llm(policy):  # type: ignore[no-untyped-def]
    return llm_reviewer(policy, name=f"llm {HOSTILE}")


def test_reviewers_may_not_open_the_page(reviewer_client, queue) -> None:
    assert reviewer_client.get("/lead/prelabels/").status_code == 403
    assert reviewer_client.post(f"/lead/prelabels/{queue.pk}/", {}).status_code == 403


def test_the_page_lists_queues_and_says_why_a_blind_one_cannot_have_pre_labels(lead_client, policy, queue, llm) -> None:
    blind = QueueFactory(slug="blind-one", name="Blind one", blind_review=True)
    ReviewTaskFactory(policy=policy, queue=queue)
    html = lead_client.get("/lead/prelabels/").content.decode()
    assert f'id="prelabels-refusal-{blind.pk}"' in html and "Blind queue" in html
    assert f'action="/lead/prelabels/{queue.pk}/"' in html
    assert f'action="/lead/prelabels/{blind.pk}/"' not in html
    assert HOSTILE not in html and "&lt;script&gt;" in html  # the LLM reviewer's name is escaped


def test_a_lead_turns_pre_labels_on_and_off(lead_client, policy, queue, llm) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    prefix = f"q{queue.pk}-"
    data = {
        prefix + "reviewer": llm.pk,
        prefix + "enabled": "on",
        prefix + "suggest_fraction": "0.6",
        prefix + "counts_toward_consensus": "on",
    }
    response = lead_client.post(f"/lead/prelabels/{queue.pk}/", data)
    assert response.status_code == 302
    settings = QueuePrelabels.objects.get(queue=queue)
    assert (settings.reviewer, settings.enabled, settings.suggest_fraction) == (llm, True, 0.6)
    assert settings.counts_toward_consensus
    assert AuditEvent.objects.filter(action="prelabels.configured", object_id=str(queue.pk)).exists()
    html = lead_client.get("/lead/prelabels/").content.decode()
    assert "60 % of eligible tasks" in html and "Automation bias" in html

    response = lead_client.post(f"/lead/prelabels/{queue.pk}/", {prefix + "suggest_fraction": "0.6"})
    settings.refresh_from_db()
    assert response.status_code == 302 and not settings.enabled and not settings.counts_toward_consensus


def test_a_fraction_above_the_cap_is_refused_with_the_reason(lead_client, policy, queue, llm) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    prefix = f"q{queue.pk}-"
    data = {prefix + "reviewer": llm.pk, prefix + "enabled": "on", prefix + "suggest_fraction": "1"}
    response = lead_client.post(f"/lead/prelabels/{queue.pk}/", data)
    assert response.status_code == 400 and "0.9" in response.content.decode()
    assert not QueuePrelabels.objects.exists()


def test_a_blind_queue_is_refused_even_by_a_crafted_post(lead_client, policy, llm) -> None:
    blind = QueueFactory(slug="blind-two", blind_review=True)
    ReviewTaskFactory(policy=policy, queue=blind)
    prefix = f"q{blind.pk}-"
    data = {prefix + "reviewer": llm.pk, prefix + "enabled": "on", prefix + "suggest_fraction": "0.5"}
    response = lead_client.post(f"/lead/prelabels/{blind.pk}/", data)
    assert response.status_code == 400 and not QueuePrelabels.objects.exists()


def _start(client: Client, queue) -> str:  # type: ignore[no-untyped-def]
    assert client.post(f"/queues/{queue.pk}/work").status_code == 302
    return client.get(f"/queues/{queue.pk}/work").content.decode()


def test_the_workspace_shows_an_escaped_machine_marked_suggestion_and_records_the_acceptance(
    reviewer_client, person, queue
) -> None:
    schema = {
        "labels": [{"value": "violating", "title": f"Violating {HOSTILE}"}, {"value": "not_violating"}],
        "allow_multiple": False,
    }
    policy = PolicyFactory(key="hostile-labels", version__label_schema=schema)
    policy_version = policy.current_version()
    llm = llm_reviewer(policy, name=f"llm {HOSTILE}")
    task = ReviewTaskFactory(policy=policy, queue=queue)
    llm_annotation(llm, task, "violating")
    prelabels_on(queue, llm, fraction=0.5)
    # The draw is the record: made "shown" here, so the test does not depend on the coin.
    SuggestionExposure.objects.create(
        task=task, reviewer=person, shown=True, suggested_label="violating", llm_reviewer=llm
    )
    html = _start(reviewer_client, queue)
    assert "LLM suggests:" in html and "Machine" in html and 'id="llm-suggestion-accept"' in html
    assert HOSTILE not in html and "Violating &lt;script&gt;" in html
    assert "<dt><kbd>a</kbd></dt>" in html  # listed in the keyboard help
    submission = re.search(r'name="submission_id" value="([0-9a-f-]{36})"', html)
    assert submission is not None
    form = {
        "submission_id": submission.group(1),
        "policy_version": str(policy_version.pk),
        "labels": "violating",
        "handle_time_ms": "900",
        "suggestion_accepted": "1",
    }
    assert reviewer_client.post(f"/tasks/{task.pk}/submit", form).status_code == 302
    assert SuggestionExposure.objects.get().accepted_with_key


@pytest.mark.parametrize("shown", [False, None])
def test_a_not_shown_draw_and_a_honeypot_render_the_same(reviewer_client, person, policy, queue, llm, shown) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue, reason="low_confidence" if shown is False else "honeypot")
    llm_annotation(llm, task, "violating")
    prelabels_on(queue, llm, fraction=0.9)
    if shown is False:
        SuggestionExposure.objects.create(
            task=task, reviewer=person, shown=False, suggested_label="violating", llm_reviewer=llm
        )
    html = _start(reviewer_client, queue)
    assert 'name="labels"' in html and "LLM suggests" not in html and "llm-suggestion" not in html
    assert SuggestionExposure.objects.count() == (1 if shown is False else 0)
    assert ReviewTask.objects.get(pk=task.pk).leased_by == person


def test_the_quality_page_shows_the_automation_bias_once(lead_client, policy, queue, llm, person) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    SuggestionExposure.objects.create(
        task=task, reviewer=person, shown=True, suggested_label="violating", llm_reviewer=llm
    )
    Annotation.objects.create(
        task=task,
        item=task.item,
        policy=policy,
        policy_version=policy.current_version(),
        reviewer=person,
        submission_id=uuid.uuid4(),
        labels=["violating"],
        handle_time_ms=1,
    )
    GoldLabel.objects.create(
        item=task.item,
        policy=policy,
        policy_version=policy.current_version(),
        labels=["violating"],
        source="adjudication",
    )
    html = lead_client.get(f"/lead/quality/?policy={policy.key}").content.decode()
    assert html.count("Automation bias: reviewers with and without") == 1
    assert '100 % <span class="muted">(1 of 1; 0.21 – 1.00)</span>' in html  # shown: right, Wilson (0.21, 1)
    assert "needs both groups" in html and "n = 0" in html  # nothing drawn "not shown" yet
    assert f"Eligible tasks of policy {policy.name}" in html and "randomised exposure" in html
    html = lead_client.get(f"/lead/quality/?policy={policy.key}&queue={queue.pk}").content.decode()
    assert f"Eligible tasks of queue {queue.name}" in html
