"""Login brute-force limit and per-token API rate limit."""

from __future__ import annotations

import pytest
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
