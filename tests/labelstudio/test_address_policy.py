"""A Label Studio connection cannot make the server send its secrets, or call internal addresses.

Every test goes the way a lead (or an admin) goes: the connection form, the admin form, the Test
button. A loopback listener stands in for whatever the typed URL points at and records every
request it gets; "nothing reached it" is the proof that no token left the server. The allow-list
is the production default (empty) unless a test allows the listener on purpose.
"""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.urls import reverse

from labeling.labelstudio.models import Connection, ConnectionStatus, SyncRun
from reviewapp.access import POLICY_LEAD
from tests.factories import PolicyFactory, UserFactory
from tests.labelstudio.listener import Listener, loopback_listener

SERVER_SECRETS = ["DJANGO_SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"]
MARKER = "REMOTE-BODY-MARKER"


@pytest.fixture(autouse=True)
def _production_allow_list(settings):  # type: ignore[no-untyped-def]
    settings.LABEL_STUDIO_ALLOWED_HOSTS = []


@pytest.fixture
def policy(db):  # type: ignore[no-untyped-def]
    return PolicyFactory(key="harassment")


@pytest.fixture
def lead_client(client, db):  # type: ignore[no-untyped-def]
    lead: User = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name=POLICY_LEAD)[0])
    client.force_login(lead)
    return client


@pytest.fixture
def listener() -> Listener:  # type: ignore[misc]
    with loopback_listener() as running:
        yield running


def _allow(settings, listener: Listener) -> None:  # type: ignore[no-untyped-def]
    """Let the listener through the address policy, as an operator would an internal server,
    so that the test is about the token (or the answer), not the address."""
    settings.LABEL_STUDIO_ALLOWED_HOSTS = [f"127.0.0.1:{listener.port}"]


def _press_test_everywhere(client) -> str:  # type: ignore[no-untyped-def]
    """Press "Test connection" on every connection there is; the pages shown, concatenated."""
    pages = [
        client.post(reverse("labelstudio-test", args=[pk]), follow=True).content.decode()
        for pk in Connection.objects.values_list("pk", flat=True)
    ]
    return "\n".join(pages)


def _legacy_connection(policy, token: str = "", **fields) -> Connection:  # type: ignore[no-untyped-def]
    """A row as saved before the rules (straight to the table, no validation)."""
    connection = Connection(name="legacy", policy=policy, **fields)
    connection.set_api_token(token)
    connection.new_webhook_secret()
    connection.save()
    return connection


# --------------------------------------------------------------------------- the token


@pytest.mark.parametrize("variable", SERVER_SECRETS)
def test_the_lead_form_cannot_name_a_server_secret(lead_client, policy, listener, settings, monkeypatch, variable):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(variable, f"server-secret-{variable}")
    _allow(settings, listener)
    form = {"name": "exfil", "base_url": listener.url, "token_env_var": variable, "policy": policy.pk}

    response = lead_client.post(reverse("labelstudio-connection-new"), form)
    _press_test_everywhere(lead_client)

    assert listener.requests == []
    assert response.status_code == 400 and not Connection.objects.exists()


def test_the_admin_form_cannot_name_a_server_secret(client, policy, listener, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DJANGO_SECRET_KEY", "server-secret")
    _allow(settings, listener)
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    form = {
        "name": "exfil",
        "base_url": listener.url,
        "new_token": "",
        "token_env_var": "DJANGO_SECRET_KEY",
        "callback_base_url": "",
        "policy": policy.pk,
        "queue": "",
        "is_active": "on",
    }

    response = client.post(reverse("admin:labelstudio_connection_add"), form)
    _press_test_everywhere(client)

    assert listener.requests == []
    assert response.status_code == 200 and "Give the Label Studio API token" in response.content.decode()
    assert not Connection.objects.exists()


def test_the_admin_form_stores_a_typed_token_encrypted(client, policy, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LABEL_STUDIO_ALLOWED_HOSTS = ["ls.internal"]
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    form = {"name": "team", "base_url": "http://ls.internal:8080", "new_token": "t0ken", "policy": policy.pk}

    response = client.post(reverse("admin:labelstudio_connection_add"), {**form, "is_active": "on"})

    assert response.status_code == 302
    connection = Connection.objects.get()
    assert connection.api_token() == "t0ken" and "t0ken" not in connection.token_ciphertext
    assert connection.token_env_var == ""


def test_a_connection_saved_with_a_secret_variable_is_refused_when_used(
    lead_client, policy, listener, settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DJANGO_SECRET_KEY", "server-secret")
    _allow(settings, listener)
    connection = _legacy_connection(policy, base_url=listener.url, token_env_var="DJANGO_SECRET_KEY")

    page = _press_test_everywhere(lead_client)

    assert listener.requests == []
    assert "only variables named LABEL_STUDIO_TOKEN_" in page and "server-secret" not in page
    connection.refresh_from_db()
    assert connection.status == ConnectionStatus.UNAUTHORIZED


def test_entering_a_token_in_the_admin_replaces_a_refused_variable(client, policy, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LABEL_STUDIO_ALLOWED_HOSTS = ["ls.internal"]
    connection = _legacy_connection(policy, base_url="http://ls.internal", token_env_var="DATABASE_URL")
    client.force_login(UserFactory(username="operator", is_staff=True, is_superuser=True))
    form = {"name": "legacy", "base_url": connection.base_url, "new_token": "typed", "policy": policy.pk}

    response = client.post(reverse("admin:labelstudio_connection_change", args=[connection.pk]), form)

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.token_env_var == "" and connection.api_token() == "typed"


def test_the_migration_flags_connections_reading_a_refused_variable(policy) -> None:  # type: ignore[no-untyped-def]
    migration = importlib.import_module("labeling.labelstudio.migrations.0002_token_env_var_prefix")
    refused = _legacy_connection(policy, base_url="https://ls.example.com", token_env_var="DATABASE_URL")
    allowed = Connection(name="ops", policy=policy, base_url="https://ls.example.com")
    allowed.token_env_var = "LABEL_STUDIO_TOKEN_OPS"
    allowed.new_webhook_secret()
    allowed.save()

    migration.flag_disallowed_token_variables(apps, None)

    refused.refresh_from_db()
    allowed.refresh_from_db()
    assert refused.status == ConnectionStatus.UNAUTHORIZED and "admin page" in refused.status_detail
    assert allowed.status == ConnectionStatus.UNKNOWN


# --------------------------------------------------------------------------- the address


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}", "https"),
        ("https://127.0.0.1:{port}", "private or local"),
        ("https://localhost:{port}", "private or local"),  # a host name that resolves to loopback
        ("https://[::1]:{port}", "private or local"),
        ("https://10.1.2.3", "private or local"),
        ("https://192.168.0.5", "private or local"),
        ("https://169.254.169.254", "private or local"),  # cloud metadata
        ("https://[::ffff:127.0.0.1]:{port}", "private or local"),
        ("http://93.184.216.34", "https"),  # public, but the token would cross the network in clear
    ],
)
def test_the_lead_form_refuses_addresses_outside_the_policy(lead_client, policy, listener, url, reason) -> None:  # type: ignore[no-untyped-def]
    form = {"name": "internal", "base_url": url.format(port=listener.port), "token": "t" * 40, "policy": policy.pk}

    response = lead_client.post(reverse("labelstudio-connection-new"), form)
    _press_test_everywhere(lead_client)

    assert response.status_code == 400 and reason in response.content.decode()
    assert not Connection.objects.exists() and listener.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_address_is_checked_again_when_connecting(lead_client, policy, listener, settings, host) -> None:  # type: ignore[no-untyped-def]
    # DEBUG allows plain http, so only the check made when connecting stands between the token
    # and the loopback listener (as for a row saved before the rules, or a name whose DNS changed).
    settings.DEBUG = True
    _legacy_connection(policy, base_url=f"http://{host}:{listener.port}", token="t" * 40)

    page = _press_test_everywhere(lead_client)

    assert listener.requests == []
    assert "address not allowed" in page and "private or local" in page
    assert SyncRun.objects.get().ok is False


def test_a_name_that_stops_resolving_is_unreachable_not_refused(lead_client, policy) -> None:  # type: ignore[no-untyped-def]
    # .invalid never resolves (RFC 6761): as for a DNS outage, the pull is retried later.
    _legacy_connection(policy, base_url="https://ls.invalid", token="t" * 40)

    page = _press_test_everywhere(lead_client)

    assert "unreachable (host not found)" in page
    assert Connection.objects.get().status == ConnectionStatus.UNREACHABLE


def test_an_allowed_host_is_reached(lead_client, policy, settings) -> None:  # type: ignore[no-untyped-def]
    with loopback_listener(200, b'{"id": 7, "email": "bot@example.com"}') as listener:
        _allow(settings, listener)
        form = {"name": "internal", "base_url": listener.url, "token": "t" * 40, "policy": policy.pk}
        assert lead_client.post(reverse("labelstudio-connection-new"), form).status_code == 302
        page = _press_test_everywhere(lead_client)

    assert "connected as bot@example.com" in page
    (request,) = listener.requests
    assert request[2]["Authorization"] == "Token " + "t" * 40


# --------------------------------------------------------------------------- the answer


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (400, b'{"detail": "%s", "validation_errors": {"x": ["%s"]}}' % (MARKER.encode(), MARKER.encode()), "HTTP 400"),
        (404, b"<html>%s</html>" % MARKER.encode(), "HTTP 404"),
        (200, b"<html><script>%s</script></html>" % MARKER.encode(), "cannot read"),
    ],
)
def test_the_remote_answer_is_never_echoed(lead_client, policy, settings, status, body, said) -> None:  # type: ignore[no-untyped-def]
    with loopback_listener(status, body) as listener:
        _allow(settings, listener)
        form = {"name": "internal", "base_url": listener.url, "token": "t" * 40, "policy": policy.pk}
        assert lead_client.post(reverse("labelstudio-connection-new"), form).status_code == 302
        page = _press_test_everywhere(lead_client)

    assert len(listener.requests) == 1
    connection = Connection.objects.get()
    assert said in page and said in connection.status_detail
    assert MARKER not in page and MARKER not in connection.status_detail and MARKER not in SyncRun.objects.get().error
