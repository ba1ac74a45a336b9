"""API rate limits per token (or per signed-in user), stored in the shared cache."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from ..models import ServiceToken


class TokenRateThrottle(SimpleRateThrottle):
    """REVIEWAPP_API_RATE requests per token; session users are limited per user."""

    scope = "token"

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if isinstance(request.auth, ServiceToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"anon-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
