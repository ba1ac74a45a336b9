"""The colour theme: the header form sets a cookie, every page then carries the chosen theme."""

from __future__ import annotations

from django.test import Client

from reviewapp.theme import COOKIE


def test_the_page_follows_the_system_until_a_theme_is_chosen(client: Client, db) -> None:  # type: ignore[no-untyped-def]
    html = client.get("/accounts/login/").content.decode()

    assert "data-theme=" not in html and '<meta name="color-scheme" content="light dark">' in html
    assert 'name="theme" value="dark" aria-pressed="false"' in html


def test_choosing_dark_sets_the_cookie_and_returns_to_the_page(client: Client, db) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/theme", {"theme": "dark", "next": "/accounts/login/?next=/ops/"})

    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=/ops/"
    cookie = response.cookies[COOKIE]
    assert cookie.value == "dark" and cookie["httponly"] and cookie["samesite"] == "Lax"
    html = client.get("/accounts/login/").content.decode()
    assert '<html lang="en" data-theme="dark">' in html
    assert 'name="theme" value="dark" aria-pressed="true"' in html


def test_an_unknown_theme_is_refused_and_sets_nothing(client: Client, db) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/theme", {"theme": "neon", "next": "/"})

    assert response.status_code == 400 and COOKIE not in response.cookies


def test_the_return_address_must_be_this_site(client: Client, db) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/theme", {"theme": "light", "next": "https://evil.example/"})

    assert response.status_code == 302 and response["Location"] == "/"


def test_a_link_cannot_switch_the_theme(client: Client, db) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/theme?theme=dark").status_code == 405


def test_a_forged_cross_site_post_is_refused(db) -> None:  # type: ignore[no-untyped-def]
    response = Client(enforce_csrf_checks=True).post("/theme", {"theme": "dark"})

    assert response.status_code == 403 and COOKIE not in response.cookies
