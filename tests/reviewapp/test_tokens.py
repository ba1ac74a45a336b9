"""A new API token's secret is shown exactly once wherever a token is created: the Django admin's
add form, `manage.py create_service_token`, and the admins' page /tokens/. Each path is driven as a
person drives it (the admin's form and the page over HTTP, the command through call_command), and
the shown secret is used once against the API.
"""

from __future__ import annotations

import re
from io import StringIO
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client

from reviewapp.models import AuditEvent, ServiceToken
from tests.factories import ContentItemFactory, UserFactory

SECRET = re.compile(r"rva_[A-Za-z0-9_-]{20,}")
ADMIN_ADD = "/admin/reviewapp/servicetoken/add/"
ADMIN_LIST = "/admin/reviewapp/servicetoken/"


@pytest.fixture
def item(db):  # type: ignore[no-untyped-def]
    return ContentItemFactory(source="comments", external_id="c-77")


def item_lookup(secret: str) -> int:
    """GET /api/v1/items (scope items:read) with the secret, as an upstream system does."""
    query = urlencode({"source": "comments", "external_id": "c-77"})
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}").get(f"/api/v1/items?{query}").status_code


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def superuser(db) -> User:
    return UserFactory(username="root-admin", is_staff=True, is_superuser=True)


@pytest.fixture
def group_admin(db) -> User:
    user = UserFactory(username="group-admin", is_staff=True)
    user.groups.add(Group.objects.get_or_create(name="admin")[0])
    return user


def shown_secrets(content: bytes | str) -> list[str]:
    return SECRET.findall(content.decode() if isinstance(content, bytes) else content)


def assert_stored_hashed(name: str, secret: str) -> ServiceToken:
    token = ServiceToken.objects.get(name=name)
    assert token.key_hash == ServiceToken.hash_secret(secret)
    assert token.prefix == secret[:8]
    stored = [str(value) for value in ServiceToken.objects.filter(pk=token.pk).values().get().values()]
    assert all(secret not in value for value in stored)
    return token


# --------------------------------------------------------------------------- the Django admin


def test_admin_add_form_generates_the_secret_and_shows_it_once(superuser, item) -> None:
    admin = signed_in(superuser)
    form = admin.get(ADMIN_ADD)
    assert form.status_code == 200
    assert b'name="key_hash"' not in form.content and b'name="prefix"' not in form.content
    assert b'value="items:read"' in form.content  # scopes are chosen from the known list

    created = admin.post(ADMIN_ADD, {"name": "search-bot", "scopes": ["items:read"], "user": ""})

    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    [secret] = set(shown_secrets(created.content))
    token = assert_stored_hashed("search-bot", secret)
    assert token.scopes == ["items:read"] and token.user is None
    event = AuditEvent.objects.get(action="token.created", object_id=str(token.pk))
    assert event.actor_label == superuser.username
    assert item_lookup(secret) == 200
    ServiceToken.objects.filter(pk=token.pk).update(last_used_at=None)
    for page in (ADMIN_LIST, f"{ADMIN_LIST}{token.pk}/change/"):
        again = admin.get(page)
        assert again.status_code == 200 and b"search-bot" in again.content
        assert shown_secrets(again.content) == []


@pytest.mark.parametrize(
    ("post", "error"),
    [
        ({"name": "x", "scopes": ["everything"]}, b"not one of the available choices"),
        ({"name": "x"}, b"This field is required"),
        ({"name": "  ", "scopes": ["items:read"]}, b"This field is required"),
    ],
)
def test_admin_cannot_save_a_token_without_a_usable_secret_or_with_unknown_scopes(superuser, post, error) -> None:
    response = signed_in(superuser).post(ADMIN_ADD, post)
    assert response.status_code == 200 and error in response.content
    assert shown_secrets(response.content) == []
    assert not ServiceToken.objects.exists()


def test_admin_refuses_a_second_token_with_the_same_name(superuser) -> None:
    admin = signed_in(superuser)
    assert admin.post(ADMIN_ADD, {"name": "dup", "scopes": ["items:read"]}).status_code == 200
    again = admin.post(ADMIN_ADD, {"name": "dup", "scopes": ["export:read"]})
    assert b"A token with this name exists" in again.content and shown_secrets(again.content) == []
    assert ServiceToken.objects.get().scopes == ["items:read"]


def test_admin_neither_edits_nor_deletes_a_token_but_revokes_it(superuser, item) -> None:
    admin = signed_in(superuser)
    [secret] = set(shown_secrets(admin.post(ADMIN_ADD, {"name": "old", "scopes": ["items:read"]}).content))
    token = ServiceToken.objects.get(name="old")
    change = admin.post(f"{ADMIN_LIST}{token.pk}/change/", {"name": "old", "scopes": '["export:write"]'})
    assert change.status_code == 403
    assert admin.post(f"{ADMIN_LIST}{token.pk}/delete/", {"post": "yes"}).status_code == 403
    token.refresh_from_db()
    assert token.scopes == ["items:read"]

    revoked = admin.post(ADMIN_LIST, {"action": "revoke_selected", "_selected_action": [token.pk]}, follow=True)

    assert b"1 token(s) revoked" in revoked.content
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoked", object_id=str(token.pk)).exists()
    assert item_lookup(secret) == 401


# --------------------------------------------------------------------------- the command


def test_command_prints_the_secret_once_and_it_authenticates(item) -> None:
    out = StringIO()
    call_command("create_service_token", "--name", "cli-reader", "--scope", "items:read", stdout=out)
    [secret] = shown_secrets(out.getvalue())
    token = assert_stored_hashed("cli-reader", secret)
    assert AuditEvent.objects.filter(action="token.created", object_id=str(token.pk)).exists()
    assert item_lookup(secret) == 200
    assert item_lookup(secret[:-1] + ("A" if secret[-1] != "A" else "B")) == 401


# --------------------------------------------------------------------------- the admins' page


def test_the_token_page_creates_a_token_and_shows_its_secret_once(group_admin, item) -> None:
    page = signed_in(group_admin)
    empty = page.get("/tokens/")
    assert empty.status_code == 200 and b"No API token yet" in empty.content

    created = page.post("/tokens/", {"name": "page-reader", "scopes": ["items:read", "metrics:read"]})

    assert created.status_code == 200
    assert "no-store" in created["Cache-Control"]
    [secret] = set(shown_secrets(created.content))
    token = assert_stored_hashed("page-reader", secret)
    assert token.scopes == ["items:read", "metrics:read"]
    assert AuditEvent.objects.get(action="token.created", object_id=str(token.pk)).actor_label == "group-admin"
    assert item_lookup(secret) == 200

    reloaded = page.get("/tokens/")
    assert b"page-reader" in reloaded.content and token.prefix.encode() in reloaded.content
    assert shown_secrets(reloaded.content) == []
    assert b"never" not in reloaded.content.split(b"page-reader", 1)[1].split(b"</tr>", 1)[0]  # last used


def test_the_token_page_refuses_unknown_scopes_and_names_in_use(group_admin) -> None:
    page = signed_in(group_admin)
    unknown = page.post("/tokens/", {"name": "x", "scopes": ["items:read", "root"]})
    assert unknown.status_code == 400 and b"not one of the available choices" in unknown.content
    assert not ServiceToken.objects.exists()
    page.post("/tokens/", {"name": "taken", "scopes": ["items:read"]})
    again = page.post("/tokens/", {"name": "taken", "scopes": ["items:read"]})
    assert again.status_code == 400 and shown_secrets(again.content) == []
    assert ServiceToken.objects.count() == 1


def test_the_token_page_revokes_a_token(group_admin, item) -> None:
    page = signed_in(group_admin)
    [secret] = set(shown_secrets(page.post("/tokens/", {"name": "gone", "scopes": ["items:read"]}).content))
    token = ServiceToken.objects.get(name="gone")

    response = page.post(f"/tokens/{token.pk}/revoke", follow=True)

    assert response.redirect_chain == [("/tokens/", 302)]
    assert b"Token gone is revoked" in response.content and b"revoked " in response.content
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.get(action="token.revoked", object_id=str(token.pk)).actor_label == "group-admin"
    assert item_lookup(secret) == 401


def test_the_token_page_is_for_admins_only(db) -> None:
    lead = UserFactory(username="a-lead", is_staff=True)
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    reviewer = UserFactory(username="a-reviewer")
    for user in (lead, reviewer):
        assert signed_in(user).get("/tokens/").status_code == 403
        assert signed_in(user).post("/tokens/", {"name": "x", "scopes": ["items:read"]}).status_code == 403
    assert Client().get("/tokens/").status_code == 302
    assert not ServiceToken.objects.exists()
