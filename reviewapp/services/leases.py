"""Lease expiry. Claiming and renewing leases belong to the reviewer workspace."""

from __future__ import annotations

from django.db import connection

from ..audit import SYSTEM
from ..context import current_request_id

SWEEP_BATCH = 1000

# `leased_by_id IS NOT NULL` lets the planner read the small partial index of leased open tasks
# (the lease check constraint makes it redundant otherwise) instead of every open task.
_EXPIRE_SQL = """
WITH expired AS (
    SELECT id, leased_by_id, lease_expires_at FROM reviewapp_reviewtask
     WHERE status = 'open' AND leased_by_id IS NOT NULL AND lease_expires_at < statement_timestamp()
     ORDER BY id
     LIMIT %(limit)s
     FOR UPDATE SKIP LOCKED
), released AS (
    UPDATE reviewapp_reviewtask t SET leased_by_id = NULL, lease_expires_at = NULL
      FROM expired WHERE t.id = expired.id
    RETURNING t.id, t.item_id, expired.leased_by_id, expired.lease_expires_at
)
INSERT INTO reviewapp_auditevent
    (actor_id, actor_label, action, object_type, object_id, item_id, before, after, request_id)
SELECT %(actor_id)s, %(actor_label)s, 'task.lease_expired', 'task', id::text, item_id,
       jsonb_build_object('leased_by', leased_by_id, 'lease_expires_at', lease_expires_at),
       '{"leased_by": null, "lease_expires_at": null}', %(request_id)s
  FROM released
"""


def task_leases_expire(*, limit: int = SWEEP_BATCH) -> int:
    """Release up to `limit` open tasks whose lease has expired; return how many.

    Expired leases are already claimable (the claim query ignores them), so this sweep only
    makes the state explicit and leaves an audit record. One statement, so the releases and their
    audit rows commit together. Idempotent and safe to run from many workers at once: rows are
    taken with SKIP LOCKED and times come from the database clock.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            _EXPIRE_SQL,
            {
                "limit": limit,
                "actor_id": SYSTEM.id,
                "actor_label": SYSTEM.label,
                "request_id": current_request_id.get(),
            },
        )
        return cursor.rowcount
