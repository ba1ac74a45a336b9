"""Tokens are encrypted at rest, never shown, and a changed key is reported clearly."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from labeling.labelstudio.crypto import SecretUnreadable
from labeling.labelstudio.models import Connection
from labeling.labelstudio.services import connection_create
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent
from tests.factories import PolicyFactory

TOKEN = "a" * 40


@pytest.fixture
def connection(db, settings) -> Connection:  # type: ignore[no-untyped-def]
    settings.LABEL_STUDIO_ALLOWED_HOSTS = ["ls.example.com"]  # a name that resolves nowhere here
    return connection_create(
        name="vendor", base_url="https://ls.example.com/", token=TOKEN, policy=PolicyFactory(), actor=SYSTEM
    )


def test_token_is_stored_encrypted_and_read_back(connection) -> None:
    stored = Connection.objects.get(pk=connection.pk)
    assert TOKEN not in stored.token_ciphertext and stored.api_token() == TOKEN
    assert TOKEN not in repr(stored) and TOKEN not in str(stored)
    assert stored.base_url == "https://ls.example.com"


def test_token_never_reaches_the_audit_log(connection) -> None:
    event = AuditEvent.objects.get(action="labelstudio.connection_created")
    assert TOKEN not in str(event.after) and "ciphertext" not in str(event.after)


def test_a_changed_key_is_reported_not_garbled(connection, settings) -> None:
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SecretUnreadable, match="encryption key changed"):
        Connection.objects.get(pk=connection.pk).api_token()


def test_keys_rotate_newest_first(connection, settings) -> None:
    old_ciphertext = connection.token_ciphertext
    derived = Connection.objects.get(pk=connection.pk).api_token()
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    connection.set_api_token(derived)
    assert connection.token_ciphertext != old_ciphertext and connection.api_token() == TOKEN
