"""Creating a policy from the product: the lead page and the REST API make version 1, in force at once."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import Policy
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent
from reviewapp.services.tokens import token_create
from tests.factories import BINARY_SCHEMA, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lead() -> User:
    user = UserFactory(username="lead")
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def form(**changes: str) -> dict[str, str]:
    return {
        "key": "spam",
        "name": "Spam",
        "severity_weight": "1.5",
        "guideline": "Unsolicited bulk promotion.",
        "label_schema": json.dumps(BINARY_SCHEMA),
        **changes,
    }


def test_a_lead_creates_a_policy_whose_first_version_is_in_force(lead: User) -> None:
    response = signed_in(lead).post("/lead/policies/new/", form())
    assert response.status_code == 302 and response["Location"] == "/lead/policies/spam/"
    policy = Policy.objects.get(key="spam")
    version = policy.current_version()
    assert version is not None and version.number == 1 and version.label_schema == BINARY_SCHEMA
    assert policy.severity_weight == 1.5 and version.created_by_id == lead.pk
    event = AuditEvent.objects.get(action="policy.created")
    assert event.actor_label == "lead" and event.after["labels"] == version.label_values


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"key": "has space"}, "key", "letters, digits"),
        ({"key": "new"}, "key", "reserved"),
        ({"label_schema": "{not json"}, "label_schema", "Not valid JSON"),
        ({"label_schema": json.dumps({"labels": [{"value": "only"}]})}, "label_schema", "at least two labels"),
        ({"severity_weight": "0"}, "severity_weight", "greater than 0"),
        ({"guideline": "   "}, "guideline", "required"),
    ],
)
def test_bad_input_is_refused_on_the_field_that_is_wrong(lead: User, changes, field, message) -> None:  # type: ignore[no-untyped-def]
    response = signed_in(lead).post("/lead/policies/new/", form(**changes))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Policy.objects.filter(key=changes.get("key", "spam")).exists()


def test_a_taken_key_is_refused_and_nothing_changes(lead: User, policy: Policy) -> None:
    response = signed_in(lead).post("/lead/policies/new/", form(key=policy.key))
    assert "already exists" in " ".join(response.context["form"].errors["key"])
    assert policy.versions.count() == 1 and not AuditEvent.objects.filter(action="policy.created").exists()


def test_reviewers_may_not_create_policies(lead: User) -> None:
    reviewer = UserFactory(username="rev")
    assert signed_in(reviewer).post("/lead/policies/new/", form()).status_code == 403
    assert not Policy.objects.filter(key="spam").exists()


def test_the_api_creates_a_policy_for_a_lead_token_with_the_scope(lead: User) -> None:
    body = {"key": "spam", "name": "Spam", "guideline": "g", "label_schema": BINARY_SCHEMA}
    _, secret = token_create(name="lead-token", scopes=["policies:write"], user=lead, actor=SYSTEM)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    created = api.post("/api/v1/policies", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["version"]["number"] == 1 and created.json()["severity_weight"] == 1.0
    again = api.post("/api/v1/policies", body, format="json")
    assert again.status_code == 400 and "already exists" in json.dumps(again.json())
    _, other = token_create(name="lead-no-scope", scopes=["tasks:write"], user=lead, actor=SYSTEM)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    assert api.post("/api/v1/policies", {**body, "key": "x"}, format="json").status_code == 403
    assert list(Policy.objects.filter(key__in=["spam", "x"]).values_list("key", flat=True)) == ["spam"]
