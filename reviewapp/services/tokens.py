"""API token lifecycle."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..audit import Actor, audit_record
from ..models import ServiceToken


def token_create(*, name: str, scopes: list[str], actor: Actor, user: User | None = None) -> tuple[ServiceToken, str]:
    """Create a token; return it with its secret, which is not stored and cannot be shown again."""
    unknown = sorted(set(scopes) - set(ServiceToken.SCOPES))
    if unknown:
        raise ValidationError(f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(ServiceToken.SCOPES)}")
    if not scopes:
        raise ValidationError("a token needs at least one scope")
    if not name.strip():
        raise ValidationError("a token needs a name")
    secret = ServiceToken.new_secret()
    with transaction.atomic():
        try:
            with transaction.atomic():
                token = ServiceToken.objects.create(
                    name=name,
                    prefix=secret[:8],
                    key_hash=ServiceToken.hash_secret(secret),
                    scopes=sorted(scopes),
                    user=user,
                )
        except IntegrityError:
            raise ValidationError(f"a token named {name!r} already exists") from None
        audit_record(
            actor=actor,
            action="token.created",
            object_type="service_token",
            object_id=token.pk,
            after={"name": name, "scopes": token.scopes, "user_id": user.pk if user else None},
        )
    return token, secret


def token_revoke(*, token_id: int, actor: Actor) -> ServiceToken:
    """Revoke a token (idempotent). Locks the token row."""
    with transaction.atomic():
        token = ServiceToken.objects.select_for_update().get(pk=token_id)
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(
                actor=actor,
                action="token.revoked",
                object_type="service_token",
                object_id=token.pk,
                before={"revoked_at": None},
                after={"revoked_at": token.revoked_at.isoformat()},
            )
    return token
