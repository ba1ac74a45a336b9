"""Claiming work: leases on review tasks.

A claim is one short transaction: `SELECT … FOR UPDATE SKIP LOCKED` picks the best open task
that nobody holds, and an UPDATE sets a lease on it. No database lock outlives the request; the
lease (a timestamp compared with the database clock) is what keeps a task with one reviewer
while they read it. An expired lease makes the task claimable again without any sweeper.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import connection, transaction

from .. import metrics
from ..audit import Actor, audit_record
from ..db import db_now
from ..models import Queue, ReviewTask, TaskSkip, TaskStatus


class ClaimError(Exception):
    """A claim-related request that cannot be honoured; the message is shown to the reviewer."""


class LeaseLost(ClaimError):
    pass


@dataclass(frozen=True)
class Claim:
    task: ReviewTask
    resumed: bool  # the reviewer already held this lease (reload, second tab)


# The best open task in a queue for a reviewer: unleased or lease expired, not already annotated
# or skipped by them, and no graphic media once they reached the queue's daily cap.
_CLAIM_SQL = """
WITH picked AS (
    SELECT t.id FROM reviewapp_reviewtask t
    JOIN reviewapp_contentitem i ON i.id = t.item_id
    WHERE t.queue_id = %(queue)s AND t.status = 'open'
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < statement_timestamp())
      AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                      WHERE a.item_id = t.item_id AND a.policy_id = t.policy_id
                        AND a.reviewer_id = %(reviewer)s AND a.retracted_at IS NULL)
      AND NOT EXISTS (SELECT 1 FROM reviewapp_taskskip s WHERE s.task_id = t.id AND s.reviewer_id = %(reviewer)s)
      AND (%(graphic_allowed)s OR NOT (i.metadata @> '{"graphic": true}'
           OR (i.modality IN ('image', 'video', 'mixed') AND jsonb_array_length(i.media_urls) > 0)))
    ORDER BY t.priority DESC, t.due_at, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE reviewapp_reviewtask t
   SET leased_by_id = %(reviewer)s, lease_expires_at = statement_timestamp() + make_interval(secs => %(lease)s),
       claimed_at = statement_timestamp()
  FROM picked WHERE t.id = picked.id
RETURNING t.id
"""


def task_claim_next(*, reviewer: User, queue: Queue) -> Claim | None:
    """Lease the next task of `queue` to `reviewer`, or return the one they already hold.

    One short transaction; rows locked with SKIP LOCKED so concurrent claimers never wait on
    each other and never get the same task. Returns None when nothing is claimable.
    """
    held = _held_task(reviewer, queue)
    if held is not None:
        return Claim(held, resumed=True)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "queue": queue.pk,
                "reviewer": reviewer.pk,
                "lease": queue.lease_seconds,
                "graphic_allowed": _graphic_allowed(reviewer, queue),
            },
        )
        row = cursor.fetchone()
        if row is None:
            return None
        task = ReviewTask.objects.select_related("item", "policy", "queue", "decision").get(pk=row[0])
        transaction.on_commit(lambda: metrics.count("claims", queue.slug))
        audit_record(
            actor=Actor.of(reviewer),
            action="task.claimed",
            object_type="task",
            object_id=task.pk,
            item_id=task.item_id,
            after={"leased_by": reviewer.pk, "lease_expires_at": task.lease_expires_at},
        )
    return Claim(task, resumed=False)


def _held_task(reviewer: User, queue: Queue) -> ReviewTask | None:
    return (
        ReviewTask.objects.select_related("item", "policy", "queue", "decision")
        .filter(queue=queue, status=TaskStatus.OPEN, leased_by=reviewer, lease_expires_at__gt=db_now())
        .order_by("claimed_at")
        .first()
    )


def _graphic_allowed(reviewer: User, queue: Queue) -> bool:
    if queue.graphic_daily_cap is None:
        return True
    from .wellness import graphic_exposures_today

    return graphic_exposures_today(reviewer=reviewer, queue=queue) < queue.graphic_daily_cap


def task_lease_renew(*, task_id: int, reviewer: User) -> datetime:
    """Extend the reviewer's lease (heartbeat). Compare-and-set: fails if they no longer hold it."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE reviewapp_reviewtask t
               SET lease_expires_at = statement_timestamp() + make_interval(secs => q.lease_seconds)
              FROM reviewapp_queue q
             WHERE t.id = %s AND q.id = t.queue_id AND t.status = 'open'
               AND t.leased_by_id = %s AND t.lease_expires_at > statement_timestamp()
            RETURNING t.lease_expires_at
            """,
            [task_id, reviewer.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise LeaseLost("Your claim on this item has expired or was released; it may be with another reviewer.")
    return row[0]


def task_release(*, task_id: int, reviewer: User, reason: str) -> ReviewTask:
    """Skip: give the task back and never hand it to this reviewer again. Idempotent.

    Locks the task row. A reason is required so leads can see why items are skipped.
    """
    reason = reason.strip()[:200]
    if not reason:
        raise ClaimError("Say why you are skipping this item.")
    with transaction.atomic():
        task = ReviewTask.objects.select_for_update().get(pk=task_id)
        _, created = TaskSkip.objects.get_or_create(task=task, reviewer=reviewer, defaults={"reason": reason})
        if task.leased_by_id == reviewer.pk:
            task.leased_by = None
            task.lease_expires_at = None
            task.save(update_fields=["leased_by", "lease_expires_at"])
        if created:
            audit_record(
                actor=Actor.of(reviewer),
                action="task.skipped",
                object_type="task",
                object_id=task.pk,
                item_id=task.item_id,
                after={"reason": reason},
            )
    return task


def task_escalate(*, task_id: int, reviewer: User, note: str) -> ReviewTask:
    """Send a task to policy leads instead of labelling it. Needs the reviewer's live lease.

    Locks the task row.
    """
    from labeling.consensus import adjudication_request
    from labeling.models import AdjudicationReason

    note = note.strip()[:2000]
    with transaction.atomic():
        task = ReviewTask.objects.select_for_update().get(pk=task_id)
        _check_holds_lease(task, reviewer)
        adjudication_request(task=task, reason=AdjudicationReason.ESCALATED, actor=Actor.of(reviewer), note=note)
    return task


def _check_holds_lease(task: ReviewTask, reviewer: User) -> None:
    if task.status != TaskStatus.OPEN:
        raise LeaseLost("This item is no longer open for review.")
    if task.leased_by_id != reviewer.pk or task.lease_expires_at is None or task.lease_expires_at <= db_now():
        raise LeaseLost("Your claim on this item has expired; claim it again to act on it.")
