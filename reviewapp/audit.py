"""Writing the append-only audit trail.

Every service that changes state records an `AuditEvent` in the same transaction as the change,
so the trail and the data can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from .context import current_request_id
from .models import AuditEvent


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


AUDIT_COPY_COLUMNS = (
    "actor_id",
    "actor_label",
    "action",
    "object_type",
    "object_id",
    "item_id",
    "before",
    "after",
    "request_id",
)


def audit_record_many(events: Iterable[AuditEvent]) -> int:
    """Write many events with COPY (bulk ingest writes thousands per request); return the count.

    Call inside the transaction that makes the changes: COPY runs on the same connection.
    """
    rows = [
        (
            e.actor_id,
            e.actor_label,
            e.action,
            e.object_type,
            e.object_id,
            e.item_id,
            _json_or_none(e.before),
            _json_or_none(e.after),
            e.request_id,
        )
        for e in events
    ]
    if not rows:
        return 0
    connection.ensure_connection()
    raw = connection.connection
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {AuditEvent._meta.db_table} ({', '.join(AUDIT_COPY_COLUMNS)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)
    return len(rows)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, cls=DjangoJSONEncoder)
