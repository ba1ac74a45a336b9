"""The audit trail is append-only at the database level."""

from __future__ import annotations

import json

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction

from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.models import AuditEvent


@pytest.fixture
def event(db) -> AuditEvent:  # type: ignore[no-untyped-def]
    return audit_record(actor=SYSTEM, action="test.done", object_type="thing", object_id=1, after={"a": 1})


def test_orm_update_is_refused(event: AuditEvent) -> None:
    with pytest.raises((ProgrammingError, IntegrityError)), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    event.refresh_from_db()
    assert event.action == "test.done"


def test_raw_sql_delete_is_refused(event: AuditEvent) -> None:
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM reviewapp_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_event_records_actor_and_database_time(django_user_model) -> None:
    user = django_user_model.objects.create_user("lead")
    event = audit_record(actor=Actor.of(user), action="x", object_type="t", object_id=5)
    event.refresh_from_db()
    assert (event.actor_id, event.actor_label, event.object_id) == (user.pk, "lead", "5")
    assert event.occurred_at is not None


def test_deleting_a_user_leaves_their_history(django_user_model) -> None:
    user = django_user_model.objects.create_user("gone")
    audit_record(actor=Actor.of(user), action="x", object_type="t", object_id=1)
    user.delete()
    assert AuditEvent.objects.get(action="x").actor_label == "gone"


def test_lead_exports_the_audit_trail_of_an_item(db, policy, routing_rule, make_token) -> None:
    import json as jsonlib

    from django.contrib.auth.models import Group
    from django.test import Client

    from tests.factories import UserFactory

    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
    body = {
        "decisions": [
            {
                "source": "s",
                "external_id": "e1",
                "text": "t",
                "policy": policy.key,
                "model_name": "m",
                "model_version": "1",
                "score": 0.5,
            }
        ]
    }
    item_id = client.post("/api/v1/decisions", body, content_type="application/json").json()["results"][0]["item_id"]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    browser = Client()
    browser.force_login(lead)
    response = browser.get(f"/items/{item_id}/audit.jsonl")
    lines = [jsonlib.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert [line["action"] for line in lines] == ["decision.ingested", "task.created"]
    assert all(line["actor_label"].startswith("token:") for line in lines)


@pytest.fixture
def lead_browser(db):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Group
    from django.test import Client

    from tests.factories import UserFactory

    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    browser = Client()
    browser.force_login(lead)
    return browser


@pytest.mark.parametrize("item_id", ["424242", "0", "12345678901234567890123"])
def test_audit_trail_of_an_unknown_item_is_404(lead_browser, item_id: str) -> None:
    """An empty 200 would tell the lead that nothing ever happened to an item that does not exist."""
    response = lead_browser.get(f"/items/{item_id}/audit.jsonl")
    assert response.status_code == 404
    assert not response.has_header("Content-Disposition")


def test_audit_trail_of_an_item_without_events_is_empty_not_404(lead_browser) -> None:
    from tests.factories import ContentItemFactory

    item = ContentItemFactory()  # made directly, so no event mentions it
    response = lead_browser.get(f"/items/{item.pk}/audit.jsonl")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b""


def test_audit_trail_outlives_its_item(lead_browser) -> None:
    """Events name items by id, not by foreign key: the trail of a purged item is still served."""
    audit_record(actor=SYSTEM, action="item.purged", object_type="content_item", object_id=777, item_id=777)
    response = lead_browser.get("/items/777/audit.jsonl")
    assert response.status_code == 200
    assert [json.loads(line)["action"] for line in b"".join(response.streaming_content).splitlines()] == ["item.purged"]
