"""API authentication with scoped service tokens (`Authorization: Bearer rva_…`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from ..access import is_lead
from ..audit import Actor
from ..models import ServiceToken

# Recording every use would turn each API call into a write; once a minute is enough to audit.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ServicePrincipal(AnonymousUser):
    """`request.user` for a token that acts for no person: authenticated, but with no rights
    beyond its token's scopes."""

    def __init__(self, token: ServiceToken) -> None:
        self.token = token

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False

    @property
    def audit_actor(self) -> Actor:
        return Actor(None, f"token:{self.token.name}")

    def __str__(self) -> str:
        return f"token:{self.token.name}"


def token_actor(request: Request) -> Actor:
    """The audit actor for an API request: the token when one was used, else the user."""
    if isinstance(request.auth, ServiceToken):
        token = request.auth
        return Actor(token.user_id, f"token:{token.name}")
    return Actor.of(request.user)


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ServiceToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, secret = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        secret = secret.strip()
        if not secret or " " in secret:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        token = (
            ServiceToken.objects.select_related("user")
            .filter(key_hash=ServiceToken.hash_secret(secret), revoked_at__isnull=True)
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        if token.user is not None and not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        _touch(token)
        return (token.user or ServicePrincipal(token), token)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


def _touch(token: ServiceToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ServiceToken.objects.filter(pk=token.pk).update(last_used_at=now)


class HasScope(permissions.BasePermission):
    """Allow a request made with a service token that carries `required_scope` (set on the view)."""

    message = "This token lacks the required scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        scope = getattr(view, "required_scope", None)
        token = request.auth
        if not isinstance(token, ServiceToken) or scope is None:
            return False
        if scope not in token.scopes:
            self.message = f"This token lacks the '{scope}' scope."
            return False
        return True


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    """Describes service tokens in the OpenAPI schema (HTTP bearer)."""

    target_class = "reviewapp.api.auth.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A service token: `Bearer rva_…`."}


class ActsForPerson(permissions.BasePermission):
    """A signed-in person (session), or a token that acts for a person and has `required_scope`.

    Reviewer actions need a person to attribute the judgement to, so service tokens without a
    user are refused.
    """

    message = "This endpoint needs a signed-in reviewer or a personal token."

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if isinstance(token, ServiceToken):
            scope = getattr(view, "required_scope", None)
            if token.user_id is None:
                return False
            if scope not in token.scopes:
                self.message = f"This token lacks the '{scope}' scope."
                return False
            return True
        return bool(request.user and request.user.is_authenticated)


class ActsForLead(ActsForPerson):
    """As ActsForPerson, and the person is a policy lead or an admin (lead operations: policies,
    queues and routing, reviewers' standing, bulk actions). A reviewer's session or personal
    token gets 403."""

    message = "This endpoint needs a signed-in policy lead or a lead's personal token."

    def has_permission(self, request: Request, view: Any) -> bool:
        if not super().has_permission(request, view):
            return False
        if not is_lead(request.user):
            self.message = "Policy leads only."
            return False
        return True
