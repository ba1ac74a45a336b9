"""Account pages: no self-service password reset (no mail is sent); signed-in people change their own."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client

from tests.factories import UserFactory

OLD_PASSWORD = "correct horse battery"
NEW_PASSWORD = "staple battery horse correct"


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/reset/done/",
    ],
)
def test_password_reset_pages_do_not_exist(db, path: str) -> None:
    """They sent mail this deployment cannot deliver, with no rate limit: a lead resets passwords instead."""
    UserFactory(username="forgetful", email="forgetful@example.com")
    client = Client()
    assert client.get(path).status_code == 404
    assert client.post(path, {"email": "forgetful@example.com"}).status_code == 404
    assert mail.outbox == []


def test_sign_in_pages_offer_no_reset_link(db) -> None:
    for path in ("/accounts/login/", "/admin/login/"):
        html = Client().get(path).content.decode().lower()
        assert "reset" not in html and "forgotten" not in html, path


def test_a_signed_in_person_changes_their_own_password(db) -> None:
    user = UserFactory(username="changer")
    user.set_password(OLD_PASSWORD)
    user.save()
    client = Client()
    client.force_login(user)
    response = client.post(
        "/accounts/password_change/",
        {"old_password": OLD_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/password_change/done/"
    assert client.get("/accounts/password_change/done/").status_code == 200
    assert Client().post("/accounts/login/", {"username": "changer", "password": NEW_PASSWORD}).status_code == 302
