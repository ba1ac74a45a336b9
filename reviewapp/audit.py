"""Writing the append-only audit trail.

Every service that changes state records an `AuditEvent` in the same transaction as the change,
so the trail and the data can never disagree.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .models import AuditEvent

# Set by RequestIdMiddleware for the duration of a request; Celery tasks leave it empty.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a user, a service token, or the system itself."""

    id: int | None
    label: str

    @classmethod
    def of(cls, who: Any) -> Actor:
        """Build an Actor from a User, an API principal (anything with `audit_actor`), or None."""
        if who is None:
            return SYSTEM
        if isinstance(who, Actor):
            return who
        if hasattr(who, "audit_actor"):
            return who.audit_actor
        if getattr(who, "is_authenticated", False):
            return cls(who.pk, who.get_username())
        return cls(None, "anonymous")


SYSTEM = Actor(None, "system")


def audit_event(
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: Any,
    item_id: int | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """An unsaved event; pass a list of them to `audit_record_many`."""
    return AuditEvent(
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        item_id=item_id,
        before=before,
        after=after,
        request_id=current_request_id.get(),
    )


def audit_record(**kwargs: Any) -> AuditEvent:
    """Write one event. Call inside the transaction that makes the change it describes."""
    event = audit_event(**kwargs)
    event.save(force_insert=True)
    return event


def audit_record_many(events: Iterable[AuditEvent]) -> None:
    AuditEvent.objects.bulk_create(list(events), batch_size=2000)
