"""The colour theme a person chose: a cookie set by the theme form in the page header.

"system" (the default) follows the browser's `prefers-color-scheme`; "light" and "dark" override
it. The choice is a display preference of this browser, like its zoom level, so it lives in a
cookie rather than in the database and is not an audited state change. A POST (CSRF-protected),
never a GET, so a link cannot switch it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

COOKIE = "reviewapp_theme"
THEMES = ("system", "light", "dark")
DEFAULT = "system"
MAX_AGE_SECONDS = 365 * 24 * 3600


def theme_of(request: HttpRequest) -> str:
    """The theme this browser chose, or "system" when it chose none (or sent something else)."""
    chosen = request.COOKIES.get(COOKIE, DEFAULT)
    return chosen if chosen in THEMES else DEFAULT


@require_POST
def theme_set(request: HttpRequest) -> HttpResponse:
    """Remember the chosen theme in a cookie and go back to the page the form was on."""
    theme = request.POST.get("theme", "")
    if theme not in THEMES:
        return HttpResponseBadRequest(f"Unknown theme; choose one of {', '.join(THEMES)}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        back = reverse("home")
    response = HttpResponseRedirect(back)
    response.set_cookie(
        COOKIE, theme, max_age=MAX_AGE_SECONDS, samesite="Lax", httponly=True, secure=request.is_secure()
    )
    return response
