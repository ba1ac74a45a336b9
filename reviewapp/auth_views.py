"""Login with a brute-force limit per (client address, username)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def _key(request: HttpRequest) -> str:
    username = request.POST.get("username", "").strip().lower()[:150]
    return f"login-failures:{request.META.get('REMOTE_ADDR', '')}:{username}"


class RateLimitedLoginView(auth_views.LoginView):
    """After LOGIN_MAX_FAILURES failed attempts, refuse further attempts for LOGIN_LOCKOUT_SECONDS.

    Counted per client address and username, so one attacker cannot lock every user out, and
    the counter resets on success.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        key = _key(request)
        if cache.get(key, 0) >= settings.LOGIN_MAX_FAILURES:
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            return render(request, "registration/login_locked.html", {"minutes": minutes}, status=429)
        response = super().post(request, *args, **kwargs)
        if response.status_code == 302:
            cache.delete(key)
        else:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, settings.LOGIN_LOCKOUT_SECONDS)
        return response
