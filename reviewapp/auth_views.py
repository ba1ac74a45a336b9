"""Login with brute-force limits per (client address, account name) and per client address."""

from __future__ import annotations

import hashlib
import ipaddress
import unicodedata
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def canonical_username(raw: str) -> str:
    """The one spelling every equivalent way of typing a name maps to.

    Django's login form applies NFKC before the lookup, so `ｐｒｏｂｅ` (fullwidth) signs in as
    `probe`; a counter keyed on the raw text would give each fullwidth/ASCII mix its own budget.
    NFKC, then case folding, then NFKC again (folding can leave non-normalised text) puts every
    spelling the backend could resolve to one account into one counter. Folding case is deliberately
    wider than the (case-sensitive) lookup: `PROBE` and `probe` share a budget, which costs nothing.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw.strip()).casefold())


def client_address(request: HttpRequest) -> str:
    """The client's address, as the limit should count it.

    Behind TRUSTED_PROXY_HOPS reverse proxies, REMOTE_ADDR is the nearest proxy's and the client is
    the hops-th address from the right of X-Forwarded-For (entries further left are the client's
    own claims and not trusted). IPv6 clients are counted per /64, the block one host usually holds.
    """
    address = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_HOPS
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            address = forwarded[-min(hops, len(forwarded))]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _name_key(address: str, username: str) -> str:
    # Hashed: a username may hold spaces or any Unicode, which cache backends warn about in keys.
    digest = hashlib.sha256(canonical_username(username).encode()).hexdigest()
    return f"login-failures:{address}:{digest}"


def _address_key(address: str) -> str:
    return f"login-failures-address:{address}"


def _count_failure(key: str) -> None:
    # The window starts at the first failure and is not extended by later ones (incr keeps the expiry).
    if not cache.add(key, 1, settings.LOGIN_LOCKOUT_SECONDS):
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, settings.LOGIN_LOCKOUT_SECONDS)


class RateLimitedLoginView(auth_views.LoginView):
    """Refuse sign-in attempts for LOGIN_LOCKOUT_SECONDS after too many failures.

    Two counters: LOGIN_MAX_FAILURES per (client address, canonical account name), reset on
    success, so one attacker cannot lock every user out and a person's typos are forgiven once they
    get in; and LOGIN_MAX_FAILURES_PER_ADDRESS per client address over all names, never reset by a
    success, so spraying one password over many names (or many spellings) is stopped too. The
    refusal is the same page whichever counter tripped and whether or not the account exists.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        address = client_address(request)
        name_key, address_key = _name_key(address, request.POST.get("username", "")), _address_key(address)
        if (
            cache.get(name_key, 0) >= settings.LOGIN_MAX_FAILURES
            or cache.get(address_key, 0) >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS
        ):
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            return render(request, "registration/login_locked.html", {"minutes": minutes}, status=429)
        response = super().post(request, *args, **kwargs)
        if response.status_code == 302:
            cache.delete(name_key)
        else:
            _count_failure(name_key)
            _count_failure(address_key)
        return response
