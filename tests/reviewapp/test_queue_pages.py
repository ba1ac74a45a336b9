"""Queues and routing run from the product: settings, members, routing rules, the estimate of a
routing change, the audit trail, and the REST API with the queues:write scope."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from reviewapp.audit import SYSTEM, Actor
from reviewapp.models import AuditEvent, ModelDecision, Queue, RoutingOutcome, RoutingRule
from reviewapp.services.queues import (
    Thresholds,
    Volume,
    queue_create,
    queue_member_add,
    queue_member_remove,
    queue_update,
    routing_rule_create,
    routing_rule_update,
    routing_volume_estimate,
)
from tests.factories import ContentItemFactory, PolicyFactory, QueueFactory, RoutingRuleFactory, UserFactory

pytestmark = pytest.mark.django_db

QUEUE_POST = {
    "slug": "hate-review",
    "name": "Hate speech review",
    "kind": "review",
    "sla_minutes": "90",
    "lease_seconds": "300",
    "required_annotations": "2",
    "max_annotations": "3",
    "adaptive": "on",
    "consensus_rule": "majority",
    "min_margin": "0",
    "min_confidence": "0.8",
    "auto_gold": "on",
    "honeypot_rate": "0.05",
    "graphic_daily_cap": "",
    "onboarding_size": "10",
    "onboarding_pass_mark": "0.8",
    "pause_below_accuracy": "0.6",
    "pause_window": "20",
    "show_author_history": "on",
    "is_active": "on",
}


@pytest.fixture
def lead() -> User:
    user = UserFactory(username="lead")
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def decide(policy, model_name: str, score: float, *, days_ago: float = 1, outcome: str = "review") -> ModelDecision:  # type: ignore[no-untyped-def]
    return ModelDecision.objects.create(
        item=ContentItemFactory(),
        policy=policy,
        model_name=model_name,
        model_version="1",
        score=score,
        routing_outcome=outcome,
        sampling_propensity=1.0,
        received_at=timezone.now() - timedelta(days=days_ago),
    )


# --- queues: constraints become form errors -----------------------------------------------------


def test_a_lead_creates_a_queue_with_its_settings_and_it_is_audited(lead) -> None:
    response = signed_in(lead).post("/lead/queues/new/", QUEUE_POST)
    queue = Queue.objects.get(slug="hate-review")
    assert response.status_code == 302 and response["Location"] == f"/lead/queues/{queue.pk}/"
    assert (queue.required_annotations, queue.max_annotations, queue.adaptive) == (2, 3, True)
    assert (queue.honeypot_rate, queue.onboarding_size, queue.pause_below_accuracy, queue.graphic_daily_cap) == (
        0.05,
        10,
        0.6,
        None,
    )
    event = AuditEvent.objects.get(action="queue.created", object_id=str(queue.pk))
    assert event.actor_label == "lead" and event.before is None and event.after["sla_minutes"] == 90


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"max_annotations": "1"}, "max_annotations", "Cannot be below the required annotations (2)"),
        ({"required_annotations": "6", "max_annotations": "5"}, "required_annotations", "Between 1 and 5"),
        ({"lease_seconds": "10"}, "lease_seconds", "At least 30 seconds"),
        ({"honeypot_rate": "1"}, "honeypot_rate", "A share from 0 up to (not including) 1"),
        ({"onboarding_pass_mark": "0"}, "onboarding_pass_mark", "A share above 0, at most 1"),
        ({"pause_below_accuracy": "1.5"}, "pause_below_accuracy", "An accuracy above 0, at most 1"),
        ({"pause_window": "0"}, "pause_window", "Between 1 and 500"),
        ({"onboarding_size": "201"}, "onboarding_size", "Between 0 (no onboarding) and 200"),
        ({"min_margin": "1"}, "min_margin", "A share from 0 up to"),
    ],
)
def test_a_setting_the_constraints_refuse_is_a_form_error_on_its_field(lead, changes, field, message) -> None:
    response = signed_in(lead).post("/lead/queues/new/", {**QUEUE_POST, **changes})
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert not Queue.objects.filter(slug="hate-review").exists()


def test_a_taken_slug_is_a_form_error(lead) -> None:
    QueueFactory(slug="hate-review")
    response = signed_in(lead).post("/lead/queues/new/", QUEUE_POST)
    assert response.status_code == 400
    assert "exists already" in response.context["form"].errors["slug"][0]


def test_editing_a_queue_records_the_changed_fields_before_and_after(lead, queue) -> None:
    post = {**QUEUE_POST, "name": queue.name, "sla_minutes": "45"}
    del post["slug"]
    response = signed_in(lead).post(f"/lead/queues/{queue.pk}/edit/", post)
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="queue.updated", object_id=str(queue.pk))
    assert event.before["sla_minutes"] == 120 and event.after["sla_minutes"] == 45
    assert "name" not in event.after  # unchanged fields are not recorded


def test_an_edit_that_changes_nothing_records_nothing(queue) -> None:
    queue_update(queue_id=queue.pk, actor=SYSTEM, sla_minutes=queue.sla_minutes)
    assert not AuditEvent.objects.filter(action="queue.updated").exists()


def test_a_service_update_is_checked_against_the_stored_settings(queue) -> None:
    queue_update(queue_id=queue.pk, actor=SYSTEM, required_annotations=3, max_annotations=4)
    with pytest.raises(ValidationError) as error:
        queue_update(queue_id=queue.pk, actor=SYSTEM, max_annotations=2)
    assert "max_annotations" in error.value.message_dict
    queue.refresh_from_db()
    assert queue.max_annotations == 4


def test_deactivating_keeps_the_queue(queue) -> None:
    queue_update(queue_id=queue.pk, actor=SYSTEM, is_active=False)
    queue.refresh_from_db()
    assert queue.is_active is False
    assert AuditEvent.objects.get(action="queue.updated").after == {"is_active": False}


# --- members ------------------------------------------------------------------------------------


def test_member_add_and_remove_are_idempotent_and_audited_once(queue) -> None:
    UserFactory(username="ana")
    actor = Actor(None, "lead")
    assert queue_member_add(queue_id=queue.pk, username="ana", actor=actor) is True
    assert queue_member_add(queue_id=queue.pk, username="ana", actor=actor) is False
    assert list(queue.members.values_list("username", flat=True)) == ["ana"]
    assert queue_member_remove(queue_id=queue.pk, username="ana", actor=actor) is True
    assert queue_member_remove(queue_id=queue.pk, username="ana", actor=actor) is False
    assert not queue.members.exists()
    events = AuditEvent.objects.filter(object_type="queue", object_id=str(queue.pk)).order_by("pk")
    assert [(e.action, e.before, e.after) for e in events] == [
        ("queue.member_added", {"member": None}, {"member": "ana", "user_id": User.objects.get(username="ana").pk}),
        ("queue.member_removed", {"member": "ana", "user_id": User.objects.get(username="ana").pk}, {"member": None}),
    ]


def test_an_unknown_username_is_a_form_error_on_the_queue_page(lead, queue) -> None:
    response = signed_in(lead).post(f"/lead/queues/{queue.pk}/members/add", {"username": "nobody"})
    assert response.status_code == 400
    assert "No active user is called 'nobody'" in html.unescape(response.content.decode())


def test_the_member_form_answers_htmx_with_the_members_region(lead, queue) -> None:
    UserFactory(username="ana")
    response = signed_in(lead).post(
        f"/lead/queues/{queue.pk}/members/add", {"username": "ana"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<section id="members"')
    assert "ana added." in body and "<html" not in body


# --- routing rules: form errors, preview before save --------------------------------------------


def rule_post(policy, queue, **changes: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "policy": policy.pk,
        "model_name": "tox-bert",
        "auto_clear": "0.2",
        "auto_action": "0.9",
        "audit_rate_clear": "0.1",
        "audit_rate_action": "0.5",
        "queue": queue.pk,
        "audit_queue": "",
        **changes,
    }


def test_auto_clear_at_or_above_auto_action_is_a_form_error(lead, policy, queue) -> None:
    response = signed_in(lead).post("/lead/routing/new/", rule_post(policy, queue, auto_clear="0.9", action="preview"))
    assert response.status_code == 400
    assert "must be below the auto-action threshold" in response.context["form"].errors["auto_clear"][0]


def test_an_audit_rate_above_one_is_a_form_error(lead, policy, queue) -> None:
    response = signed_in(lead).post("/lead/routing/new/", rule_post(policy, queue, audit_rate_action="2"))
    assert response.status_code == 400 and "audit_rate_action" in response.context["form"].errors


def test_a_second_rule_for_the_same_policy_and_model_is_a_form_error(lead, routing_rule, queue) -> None:
    response = signed_in(lead).post("/lead/routing/new/", rule_post(routing_rule.policy, queue, model_name="*"))
    assert response.status_code == 400 and "already" in response.context["form"].errors["model_name"][0]


def test_saving_unpreviewed_values_shows_their_estimate_first(lead, policy, queue) -> None:
    client = signed_in(lead)
    response = client.post("/lead/routing/new/", rule_post(policy, queue, action="save"))
    assert response.status_code == 200 and response.context["unconfirmed"]
    assert not RoutingRule.objects.exists()
    fingerprint = response.context["fingerprint"]
    changed = client.post(
        "/lead/routing/new/", rule_post(policy, queue, action="save", previewed=fingerprint, auto_action="0.95")
    )
    assert changed.status_code == 200 and not RoutingRule.objects.exists()  # other values: their estimate first
    saved = client.post("/lead/routing/new/", rule_post(policy, queue, action="save", previewed=fingerprint))
    assert saved.status_code == 302 and saved["Location"] == "/lead/routing/"
    rule = RoutingRule.objects.get()
    assert (rule.model_name, rule.auto_clear, rule.auto_action, rule.audit_rate_action) == ("tox-bert", 0.2, 0.9, 0.5)
    event = AuditEvent.objects.get(action="routing_rule.created")
    assert event.after["queue_id"] == queue.pk and event.after["policy"] == policy.key


def test_editing_a_rule_records_before_and_after(lead, routing_rule) -> None:
    routing_rule_update(rule_id=routing_rule.pk, actor=Actor.of(lead), auto_action=0.8, audit_rate_clear=0.1)
    event = AuditEvent.objects.get(action="routing_rule.updated")
    assert event.before == {"auto_action": 0.9, "audit_rate_clear": 0.0}
    assert event.after == {"auto_action": 0.8, "audit_rate_clear": 0.1}
    with pytest.raises(ValidationError) as error:
        routing_rule_update(rule_id=routing_rule.pk, actor=SYSTEM, auto_clear=0.85)
    assert "auto_clear" in error.value.message_dict


def test_a_rule_cannot_send_work_to_an_inactive_queue(policy, queue) -> None:
    queue_update(queue_id=queue.pk, actor=SYSTEM, is_active=False)
    queue.refresh_from_db()
    with pytest.raises(ValidationError) as error:
        routing_rule_create(policy=policy, model_name="*", auto_clear=None, auto_action=None, queue=queue, actor=SYSTEM)
    assert "inactive" in error.value.message_dict["queue"][0]


# --- the estimate -------------------------------------------------------------------------------


def test_the_estimate_counts_the_window_by_both_thresholds_and_leaves_out_shadow_decisions(policy, queue) -> None:
    RoutingRuleFactory(policy=policy, queue=queue, auto_clear=0.2, auto_action=0.9)
    for score in (0.05, 0.2, 0.5, 0.85, 0.9, 0.99):
        decide(policy, "tox-bert", score)
    decide(policy, "tox-bert", 0.99, outcome=RoutingOutcome.SHADOW)  # routed nothing
    decide(policy, "tox-bert", 0.99, days_ago=8)  # outside the window
    decide(PolicyFactory(key="spam"), "tox-bert", 0.99)  # another policy
    estimate = routing_volume_estimate(
        policy=policy, model_name="*", proposed=Thresholds(0.1, 0.8, audit_rate_clear=0.5, audit_rate_action=0.25)
    )
    assert estimate.decisions == 6 and estimate.current_rule_model == "*"
    assert estimate.current == Volume(auto_actioned=2, auto_cleared=2, queued=2, audit_expected=0.0)
    assert estimate.proposed == Volume(auto_actioned=3, auto_cleared=1, queued=2, audit_expected=1.25)


def test_a_model_rule_takes_its_models_decisions_from_the_star_rule(policy, queue) -> None:
    RoutingRuleFactory(policy=policy, queue=queue, model_name="*", auto_clear=0.2, auto_action=0.9)
    RoutingRuleFactory(policy=policy, queue=queue, model_name="own", auto_clear=None, auto_action=0.5)
    for score in (0.1, 0.6, 0.95):
        decide(policy, "own", score)
        decide(policy, "other", score)
    proposed = Thresholds(None, None, 0.0, 0.0)
    star = routing_volume_estimate(policy=policy, model_name="*", proposed=proposed)
    assert star.decisions == 3 and star.current == Volume(1, 1, 1, 0.0)  # only 'other': 'own' has its rule
    own = routing_volume_estimate(policy=policy, model_name="own", proposed=proposed)
    assert own.current_rule_model == "own" and own.current == Volume(2, 0, 1, 0.0)
    assert own.proposed == Volume(0, 0, 3, 0.0)
    # A new rule for a model routed by '*' today: current is the '*' rule's routing of its decisions.
    new = routing_volume_estimate(policy=policy, model_name="other", proposed=Thresholds(0.5, 0.7, 0.0, 0.0))
    assert new.current_rule_model == "*" and new.current == Volume(1, 1, 1, 0.0)
    assert new.proposed == Volume(1, 1, 1, 0.0) and new.decisions == 3


def test_without_a_rule_in_force_there_is_no_current_routing(policy) -> None:
    decide(policy, "m", 0.5)
    estimate = routing_volume_estimate(policy=policy, model_name="m", proposed=Thresholds(0.6, None, 0.0, 0.0))
    assert estimate.current is None and estimate.proposed == Volume(0, 1, 0, 0.0)


def test_the_estimate_refuses_unordered_thresholds(policy) -> None:
    with pytest.raises(ValidationError):
        routing_volume_estimate(policy=policy, model_name="*", proposed=Thresholds(0.7, 0.7, 0.0, 0.0))


def test_the_rule_page_shows_the_estimate_as_an_htmx_partial(lead, policy, queue) -> None:
    RoutingRuleFactory(policy=policy, queue=queue, auto_clear=0.2, auto_action=0.9)
    for score in (0.1, 0.5, 0.95):
        decide(policy, "tox-bert", score)
    response = signed_in(lead).post(
        "/lead/routing/new/", rule_post(policy, queue, action="preview"), headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="rule-form">')
    rows = {row: cells for row, cells in re.findall(r'<tr id="estimate-([a-z-]+)">(.*?)</tr>', body)}
    proposed = {row: re.findall(r'<td class="num">([^<]*)</td>', cells)[1] for row, cells in rows.items()}
    assert proposed == {"auto-actioned": "1", "auto-cleared": "1", "queued": "1", "audit": "0.6"}


# --- REST ---------------------------------------------------------------------------------------


@pytest.fixture
def tokens(lead, make_token) -> dict[str, str]:  # type: ignore[no-untyped-def]
    reviewer = UserFactory(username="rev")
    return {
        "lead": make_token(["queues:write"], user=lead),
        "lead_without_scope": make_token(["tasks:write"], user=lead),
        "reviewer": make_token(["queues:write"], user=reviewer),
        "service": make_token(["queues:write"]),
    }


def api(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def test_the_api_needs_a_lead_token_with_the_queues_scope(tokens, queue) -> None:
    statuses = {who: api(secret).get("/api/v1/queues").status_code for who, secret in tokens.items()}
    assert statuses == {"lead": 200, "lead_without_scope": 403, "reviewer": 403, "service": 403}
    refused = api(tokens["lead_without_scope"]).get("/api/v1/queues").json()
    assert "queues:write" in refused["detail"]


def test_a_lead_token_runs_queues_members_and_rules(tokens, policy) -> None:
    client = api(tokens["lead"])
    created = client.post("/api/v1/queues", {"slug": "q-api", "name": "API queue"}, content_type="application/json")
    assert created.status_code == 201, created.content
    queue_id = created.json()["id"]
    refused = client.patch(f"/api/v1/queues/{queue_id}", {"max_annotations": 0}, content_type="application/json")
    assert refused.status_code == 400 and "required annotations" in refused.json()["detail"]
    UserFactory(username="ana")
    for expected in (True, False):
        added = client.post(f"/api/v1/queues/{queue_id}/members", {"username": "ana"}, content_type="application/json")
        assert added.json() == {"username": "ana", "changed": expected, "members": ["ana"]}
    removed = client.post(
        f"/api/v1/queues/{queue_id}/members/remove", {"username": "ana"}, content_type="application/json"
    )
    assert removed.json()["changed"] is True and removed.json()["members"] == []
    rule = client.post(
        "/api/v1/routing-rules",
        {"policy": policy.key, "model_name": "m", "auto_clear": 0.1, "auto_action": 0.9, "queue": "q-api"},
        content_type="application/json",
    )
    assert rule.status_code == 201 and rule.json()["audit_queue"] is None
    patched = client.patch(
        f"/api/v1/routing-rules/{rule.json()['id']}", {"auto_action": 0.8}, content_type="application/json"
    )
    assert patched.json()["auto_action"] == 0.8
    bad = client.patch(
        f"/api/v1/routing-rules/{rule.json()['id']}", {"auto_clear": 0.85}, content_type="application/json"
    )
    assert bad.status_code == 400
    deactivated = client.patch(f"/api/v1/queues/{queue_id}", {"is_active": False}, content_type="application/json")
    assert deactivated.json()["is_active"] is False
    actors = set(AuditEvent.objects.filter(action__startswith=("queue.")).values_list("actor_label", flat=True))
    assert actors == {"token:test-token-0"}


def test_the_estimate_endpoint(tokens, policy, queue) -> None:
    RoutingRuleFactory(policy=policy, queue=queue, auto_clear=0.2, auto_action=0.9)
    for score in (0.1, 0.5, 0.95):
        decide(policy, "m", score)
    response = api(tokens["lead"]).get(
        "/api/v1/routing-rules/estimate",
        {"policy": policy.key, "model_name": "m", "auto_action": 0.4, "audit_rate_action": 0.5},
    )
    body = response.json()
    assert response.status_code == 200 and body["decisions"] == 3 and body["current_rule_model"] == "*"
    assert body["current"] == {"auto_actioned": 1, "auto_cleared": 1, "queued": 1, "audit_expected": 0.0}
    assert body["proposed"] == {"auto_actioned": 2, "auto_cleared": 0, "queued": 1, "audit_expected": 1.0}
    bad = api(tokens["lead"]).get(
        "/api/v1/routing-rules/estimate", {"policy": policy.key, "auto_clear": 0.5, "auto_action": 0.5}
    )
    assert bad.status_code == 400


def test_a_queue_made_by_the_service_defaults_like_the_model() -> None:
    queue = queue_create(slug="plain", name="Plain", actor=SYSTEM)
    assert (queue.required_annotations, queue.max_annotations, queue.lease_seconds) == (1, 3, 600)
