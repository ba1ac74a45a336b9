"""Lease expiry. Claiming and renewing leases belong to the reviewer workspace."""

from __future__ import annotations

from django.db import connection, transaction

from ..audit import SYSTEM, audit_event, audit_record_many

SWEEP_BATCH = 1000


def task_leases_expire(*, limit: int = SWEEP_BATCH) -> int:
    """Release up to `limit` open tasks whose lease has expired; return how many.

    Expired leases are already claimable (the claim query ignores them), so this sweep only
    makes the state explicit and leaves an audit record. Idempotent and safe to run from many
    workers at once: rows are taken with SKIP LOCKED and times come from the database clock.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE reviewapp_reviewtask t
               SET leased_by_id = NULL, lease_expires_at = NULL
              FROM (SELECT id, leased_by_id, lease_expires_at FROM reviewapp_reviewtask
                     WHERE status = 'open' AND lease_expires_at < statement_timestamp()
                     ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) AS expired
             WHERE t.id = expired.id
            RETURNING t.id, t.item_id, expired.leased_by_id, expired.lease_expires_at
            """,
            [limit],
        )
        released = cursor.fetchall()
        audit_record_many(
            audit_event(
                actor=SYSTEM,
                action="task.lease_expired",
                object_type="task",
                object_id=task_id,
                item_id=item_id,
                before={"leased_by": user_id, "lease_expires_at": expires.isoformat()},
                after={"leased_by": None, "lease_expires_at": None},
            )
            for task_id, item_id, user_id, expires in released
        )
    return len(released)
