"""The lead-only Label Studio page and its buttons (plain POST forms)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from labeling.labelstudio import views
from labeling.labelstudio.models import Connection, SyncRun
from labeling.labelstudio.services import connection_create
from reviewapp.access import POLICY_LEAD
from reviewapp.audit import SYSTEM
from tests.factories import PolicyFactory, QueueFactory, UserFactory


@pytest.fixture
def lead_client(client, db):  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name=POLICY_LEAD)[0])
    client.force_login(lead)
    return client


@pytest.fixture
def connection(db) -> Connection:  # type: ignore[no-untyped-def]
    return connection_create(
        name="vendor",
        base_url="http://127.0.0.1:9",
        token="t" * 40,
        policy=PolicyFactory(key="spam"),
        queue=QueueFactory(slug="overflow"),
        actor=SYSTEM,
    )


def test_reviewers_cannot_see_the_page(client, db) -> None:
    client.force_login(UserFactory(username="reviewer"))
    assert client.get(reverse("labelstudio-connections")).status_code == 403


def test_page_lists_connections_with_status_and_the_sync_log(lead_client, connection) -> None:
    SyncRun.objects.create(connection=connection, kind="pull", ok=False, error="Label Studio is unreachable")
    response = lead_client.get(reverse("labelstudio-connections"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "vendor" in body and "Label Studio is unreachable" in body and "Test connection" in body
    assert "<script>" not in body and "t" * 40 not in body


def test_test_connection_reports_an_unreachable_server(lead_client, connection) -> None:
    response = lead_client.post(reverse("labelstudio-test", args=[connection.pk]), follow=True)
    assert "unreachable" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == "unreachable"


@pytest.mark.parametrize(("name", "task"), [("push", "push_tasks"), ("pull", "pull_connection")])
def test_buttons_enqueue_work_after_commit(
    lead_client, connection, monkeypatch, django_capture_on_commit_callbacks, name, task
) -> None:  # type: ignore[no-untyped-def]
    queued: list[tuple] = []
    monkeypatch.setattr(getattr(views, task), "delay", lambda *args: queued.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(reverse(f"labelstudio-{name}", args=[connection.pk]))
    assert response.status_code == 302 and queued[0][0] == connection.pk


def test_a_lead_adds_a_connection_and_the_token_is_not_echoed(lead_client, db, settings) -> None:
    settings.LABEL_STUDIO_ALLOWED_HOSTS = ["ls.example.org"]  # a name that resolves nowhere here
    policy = PolicyFactory(key="fraud")
    form = {"name": "team-b", "base_url": "https://ls.example.org", "token": "secret-token", "policy": policy.pk}
    response = lead_client.post(reverse("labelstudio-connection-new"), form, follow=True)
    assert response.status_code == 200 and "secret-token" not in response.content.decode()
    assert Connection.objects.get(name="team-b").api_token() == "secret-token"
