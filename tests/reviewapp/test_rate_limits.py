"""Login brute-force limit and per-token API rate limit."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def _empty_cache():  # type: ignore[no-untyped-def]
    cache.clear()
    yield
    cache.clear()


def test_login_is_locked_after_repeated_failures(db, settings) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    user = UserFactory(username="victim")
    user.set_password("correct horse battery")
    user.save()
    client = Client()
    for _ in range(3):
        assert client.post("/accounts/login/", {"username": "victim", "password": "nope"}).status_code == 200
    locked = client.post("/accounts/login/", {"username": "victim", "password": "correct horse battery"})
    assert locked.status_code == 429 and "Too many sign-in attempts" in locked.content.decode()
    other = client.post("/accounts/login/", {"username": "someone-else", "password": "x"})
    assert other.status_code == 200  # one username's lockout does not block others


def test_successful_login_resets_the_counter(db, settings) -> None:
    settings.LOGIN_MAX_FAILURES = 2
    user = UserFactory(username="forgetful")
    user.set_password("correct horse battery")
    user.save()
    client = Client()
    client.post("/accounts/login/", {"username": "forgetful", "password": "nope"})
    assert (
        client.post("/accounts/login/", {"username": "forgetful", "password": "correct horse battery"}).status_code
        == 302
    )
    client.post("/accounts/login/", {"username": "forgetful", "password": "nope"})
    assert client.post("/accounts/login/", {"username": "forgetful", "password": "nope"}).status_code == 200


LOCKED = "Too many sign-in attempts"


def _user(username: str):  # type: ignore[no-untyped-def]
    user = UserFactory(username=username)
    user.set_password("correct horse battery")
    user.save()
    return user


@pytest.mark.parametrize("spelling", ["ｐｒｏｂｅ", "ｐrobe", "prｏbe", "PROBE", "Probe", " probe "])
def test_login_lockout_holds_for_every_spelling_of_the_name(db, settings, spelling: str) -> None:
    """Django's login form NFKC-normalises the name, so `ｐｒｏｂｅ` signs in as `probe`: a
    lockout earned as `probe` must hold for the fullwidth, mixed and differently-cased spellings."""
    settings.LOGIN_MAX_FAILURES = 5
    _user("probe")
    client = Client()
    for _ in range(5):
        assert client.post("/accounts/login/", {"username": "probe", "password": "nope"}).status_code == 200
    locked = client.post("/accounts/login/", {"username": spelling, "password": "correct horse battery"})
    assert locked.status_code == 429 and LOCKED in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_failures_under_mixed_spellings_share_one_counter(db, settings) -> None:
    settings.LOGIN_MAX_FAILURES = 5
    _user("probe")
    client = Client()
    for spelling in ("ｐｒｏｂｅ", "ｐrobe", "pｒobe", "prｏbe", "proｂe"):
        assert client.post("/accounts/login/", {"username": spelling, "password": "nope"}).status_code == 200
    locked = client.post("/accounts/login/", {"username": "probe", "password": "correct horse battery"})
    assert locked.status_code == 429 and LOCKED in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_fullwidth_name_still_signs_in_when_not_locked(db, settings) -> None:
    """Normalising the counter's key does not change who may sign in: the form's NFKC still applies."""
    _user("probe")
    client = Client()
    response = client.post("/accounts/login/", {"username": "ｐｒｏｂｅ", "password": "correct horse battery"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(User.objects.get(username="probe").pk)


def test_one_address_spraying_many_names_is_locked_out(db, settings) -> None:
    settings.LOGIN_MAX_FAILURES = 5
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    _user("target")
    sprayer = Client(REMOTE_ADDR="203.0.113.7")
    for n in range(4):
        response = sprayer.post("/accounts/login/", {"username": f"user{n}", "password": "Summer2026!"})
        assert response.status_code == 200
    locked = sprayer.post("/accounts/login/", {"username": "target", "password": "correct horse battery"})
    assert locked.status_code == 429 and LOCKED in locked.content.decode()
    assert "_auth_user_id" not in sprayer.session
    elsewhere = Client(REMOTE_ADDR="198.51.100.9")
    assert (
        elsewhere.post("/accounts/login/", {"username": "target", "password": "correct horse battery"}).status_code
        == 302
    )


def test_a_success_does_not_reset_the_address_counter(db, settings) -> None:
    """An attacker holding one valid account cannot refill the per-address budget by signing in."""
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 3
    _user("mine")
    client = Client()
    for n in range(2):
        client.post("/accounts/login/", {"username": f"victim{n}", "password": "guess"})
    assert client.post("/accounts/login/", {"username": "mine", "password": "correct horse battery"}).status_code == 302
    client.post("/accounts/login/", {"username": "victim2", "password": "guess"})
    locked = client.post("/accounts/login/", {"username": "victim3", "password": "guess"})
    assert locked.status_code == 429


def test_lockout_page_does_not_tell_whether_the_account_exists(db, settings) -> None:
    settings.LOGIN_MAX_FAILURES = 2
    _user("real")
    pages = []
    for name in ("real", "ghost"):
        client = Client()
        for _ in range(2):
            failed = client.post("/accounts/login/", {"username": name, "password": "nope"})
            assert failed.status_code == 200
            assert "Your username and password didn't match" in failed.content.decode()
        locked = client.post("/accounts/login/", {"username": name, "password": "nope"})
        pages.append((locked.status_code, re.sub(r"[A-Za-z0-9]{64}", "<csrf token>", locked.content.decode())))
    assert pages[0] == pages[1] and pages[0][0] == 429


def test_address_behind_trusted_proxies_comes_from_x_forwarded_for(db, settings) -> None:
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    settings.TRUSTED_PROXY_HOPS = 1
    _user("alice")
    proxy = "10.0.0.2"
    attacker = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.7")
    for n in range(2):
        attacker.post("/accounts/login/", {"username": f"u{n}", "password": "guess"})
    assert attacker.post("/accounts/login/", {"username": "u3", "password": "guess"}).status_code == 429
    # A spoofed left-most entry does not give the attacker a fresh address...
    spoofed = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.7")
    assert spoofed.post("/accounts/login/", {"username": "u4", "password": "guess"}).status_code == 429
    # ...and another client behind the same proxy is not locked out with them.
    colleague = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert (
        colleague.post("/accounts/login/", {"username": "alice", "password": "correct horse battery"}).status_code
        == 302
    )


def test_forwarded_for_is_ignored_without_trusted_proxies(db, settings) -> None:
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    for n in range(3):
        client = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        response = client.post("/accounts/login/", {"username": f"u{n}", "password": "guess"})
    assert response.status_code == 429


def test_api_rate_limit_is_per_token(make_token, settings) -> None:
    from rest_framework.settings import api_settings

    from reviewapp.api.throttling import TokenRateThrottle

    original = TokenRateThrottle.THROTTLE_RATES
    TokenRateThrottle.THROTTLE_RATES = {**api_settings.DEFAULT_THROTTLE_RATES, "token": "3/min"}
    try:
        first, second = APIClient(), APIClient()
        first.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
        second.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
        codes = [first.post("/api/v1/decisions", {"decisions": []}, format="json").status_code for _ in range(4)]
        assert codes == [400, 400, 400, 429]
        assert second.post("/api/v1/decisions", {"decisions": []}, format="json").status_code == 400
    finally:
        TokenRateThrottle.THROTTLE_RATES = original


def test_ipv6_clients_are_counted_per_64_block(db, settings) -> None:
    """One host usually holds a whole /64: rotating the low bits must not buy fresh guesses."""
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    for n in range(2):
        Client(REMOTE_ADDR=f"2001:db8:1:2::{n + 1:x}").post("/accounts/login/", {"username": f"u{n}", "password": "x"})
    rotated = Client(REMOTE_ADDR="2001:db8:1:2:ffff::9").post("/accounts/login/", {"username": "u9", "password": "x"})
    assert rotated.status_code == 429
    neighbour = Client(REMOTE_ADDR="2001:db8:1:3::1").post("/accounts/login/", {"username": "u9", "password": "x"})
    assert neighbour.status_code == 200
