"""Claiming work: leases on review tasks.

A claim is one SQL statement, so one round trip and, outside a caller's transaction, one short
transaction of its own: it returns the task the reviewer already holds in the queue or else picks
the best open task that nobody holds (`SELECT … FOR UPDATE SKIP LOCKED`), leases it and writes
the `task.claimed` audit row. No database lock outlives the statement; the lease (a timestamp
compared with the database clock) is what keeps a task with one reviewer while they read it. An
expired lease makes the task claimable again without any sweeper.

The claim reads the partial index `reviewtask_claim` (open tasks only), so decided tasks do not
slow it down however many there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from django.contrib.auth.models import User
from django.db import connection, models, transaction
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models.functions import Now

from labeling.models import Policy

from .. import metrics
from ..audit import Actor
from ..context import current_request_id
from ..errors import Conflict, Invalid
from ..models import ContentItem, ModelDecision, Queue, ReviewTask, TaskStatus
from .standing import queue_standing_for

M = TypeVar("M", bound=models.Model)


class ClaimError(Exception):
    """A claim-related request that cannot be honoured; the message is shown to the reviewer."""


class LeaseLost(ClaimError, Conflict):
    """The reviewer no longer holds the task (expired, released, or decided meanwhile)."""


class ReasonMissing(ClaimError, Invalid):
    """A skip without a reason."""


@dataclass(frozen=True)
class Claim:
    task: ReviewTask
    resumed: bool  # the reviewer already held this lease (reload, second tab)


# What a claim hands to the workspace: the task with its item, policy and model decision. The
# item's embedding is left out (nothing a reviewer sees uses it; it loads on access).
_TASK_FIELDS = tuple(ReviewTask._meta.concrete_fields)
_ITEM_FIELDS = tuple(f for f in ContentItem._meta.concrete_fields if f.name != "embedding")
_POLICY_FIELDS = tuple(Policy._meta.concrete_fields)
_DECISION_FIELDS = tuple(ModelDecision._meta.concrete_fields)


def _columns(alias: str, fields: Sequence[models.Field]) -> str:
    return ", ".join(f'{alias}."{field.column}"' for field in fields)


# The task chosen by a `task` CTE with its item, policy and model decision, for `_task_from_row`
# (the column lists come from the models only).
_TASK_ROW_SQL = """
SELECT task.resumed, {task}, {item}, {policy}, {decision}
  FROM task
  JOIN reviewapp_contentitem i ON i.id = task.item_id
  JOIN labeling_policy p ON p.id = task.policy_id
  LEFT JOIN reviewapp_modeldecision d ON d.id = task.decision_id
""".format(
    task=_columns("task", _TASK_FIELDS),
    item=_columns("i", _ITEM_FIELDS),
    policy=_columns("p", _POLICY_FIELDS),
    decision=_columns("d", _DECISION_FIELDS),
)

# `held`: the reviewer's live lease in this queue, if any (reload, second tab). Otherwise
# `mine`: the best open task reserved for the reviewer (an open TaskAssignment: a lead sent their
# answer back, or assigned it to them), read through the small partial index of open assignments;
# and only when there is none, `unreserved`: the best open task that is reserved for nobody
# (`assigned` is false). Both take only tasks unleased or whose lease expired, not already annotated
# or skipped by the reviewer, and no graphic media once they reached the queue's daily cap.
# `picked` is whichever of the two found one. A honeypot whose item was in one of the reviewer's
# onboarding sets is never served to them: they saw its reference answer there, so they would
# recognise it as a known-answer check (and it would measure memory, not judgement).
# OFFSET 0 keeps each NOT EXISTS a probe of a unique index for the few candidates read in claim
# order: as an anti-join, the planner may read all of the reviewer's annotations or skips first,
# which costs more the longer they have worked (and it guesses their count from statistics).
_CLAIM_CTES = """
WITH held AS (
    SELECT t.id FROM reviewapp_reviewtask t
     WHERE t.queue_id = %(queue)s AND t.status = 'open' AND t.leased_by_id = %(reviewer)s
       AND t.lease_expires_at > statement_timestamp()
     ORDER BY t.claimed_at
     LIMIT 1
), mine AS (
    SELECT t.id FROM reviewapp_taskassignment ta
    JOIN reviewapp_reviewtask t ON t.id = ta.task_id
    JOIN reviewapp_contentitem i ON i.id = t.item_id
    WHERE NOT EXISTS (SELECT FROM held)
      AND ta.reviewer_id = %(reviewer)s AND ta.fulfilled_at IS NULL AND ta.cancelled_at IS NULL
      AND t.queue_id = %(queue)s AND t.status = 'open'
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < statement_timestamp())
      AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                      WHERE a.item_id = t.item_id AND a.policy_id = t.policy_id
                        AND a.reviewer_id = %(reviewer)s AND a.retracted_at IS NULL
                      OFFSET 0)
      AND NOT EXISTS (SELECT 1 FROM reviewapp_taskskip s WHERE s.task_id = t.id AND s.reviewer_id = %(reviewer)s
                      OFFSET 0)
      AND (%(graphic_allowed)s OR NOT (i.metadata @> '{"graphic": true}'
           OR (i.modality IN ('image', 'video', 'mixed') AND jsonb_array_length(i.media_urls) > 0)))
    ORDER BY t.priority DESC, t.due_at, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), unreserved AS (
    SELECT t.id FROM reviewapp_reviewtask t
    JOIN reviewapp_contentitem i ON i.id = t.item_id
    WHERE NOT EXISTS (SELECT FROM held) AND NOT EXISTS (SELECT FROM mine)
      AND t.queue_id = %(queue)s AND t.status = 'open' AND NOT t.assigned
      AND (t.lease_expires_at IS NULL OR t.lease_expires_at < statement_timestamp())
      AND (t.reason <> 'honeypot' OR NOT EXISTS (
               SELECT 1 FROM labeling_onboardingattempt oa
               JOIN labeling_goldlabel g ON oa.gold_ids @> to_jsonb(g.id)
               WHERE oa.reviewer_id = %(reviewer)s AND g.item_id = t.item_id
               OFFSET 0))
      AND NOT EXISTS (SELECT 1 FROM labeling_annotation a
                      WHERE a.item_id = t.item_id AND a.policy_id = t.policy_id
                        AND a.reviewer_id = %(reviewer)s AND a.retracted_at IS NULL
                      OFFSET 0)
      AND NOT EXISTS (SELECT 1 FROM reviewapp_taskskip s WHERE s.task_id = t.id AND s.reviewer_id = %(reviewer)s
                      OFFSET 0)
      AND (%(graphic_allowed)s OR NOT (i.metadata @> '{"graphic": true}'
           OR (i.modality IN ('image', 'video', 'mixed') AND jsonb_array_length(i.media_urls) > 0)))
    ORDER BY t.priority DESC, t.due_at, t.id
    LIMIT 1
    FOR UPDATE OF t SKIP LOCKED
), picked AS (
    SELECT id FROM mine UNION ALL SELECT id FROM unreserved
), claimed AS (
    UPDATE reviewapp_reviewtask t
       SET leased_by_id = %(reviewer)s,
           lease_expires_at = statement_timestamp() + make_interval(secs => %(lease)s),
           claimed_at = statement_timestamp(),
           last_leased_by_id = %(reviewer)s
      FROM picked WHERE t.id = picked.id
    RETURNING t.*
), audit AS (
    INSERT INTO reviewapp_auditevent
        (actor_id, actor_label, action, object_type, object_id, item_id, after, request_id)
    SELECT %(reviewer)s, %(actor_label)s, 'task.claimed', 'task', claimed.id::text, claimed.item_id,
           jsonb_build_object('leased_by', claimed.leased_by_id, 'lease_expires_at', claimed.lease_expires_at),
           %(request_id)s
      FROM claimed
), task AS (
    SELECT claimed.*, false AS resumed FROM claimed
    UNION ALL
    SELECT t.*, true FROM reviewapp_reviewtask t JOIN held ON held.id = t.id
)
"""
_CLAIM_SQL = _CLAIM_CTES + _TASK_ROW_SQL

# The reviewer's live lease in the queue, if any, shaped as a claim's row. Reads only: this is
# what a GET of the workspace shows, so a link, a reload or a cross-site navigation claims nothing.
_HELD_CTE = """
WITH task AS (
    SELECT t.*, true AS resumed FROM reviewapp_reviewtask t
     WHERE t.queue_id = %(queue)s AND t.status = 'open' AND t.leased_by_id = %(reviewer)s
       AND t.lease_expires_at > statement_timestamp()
     ORDER BY t.claimed_at
     LIMIT 1
)
"""
_HELD_SQL = _HELD_CTE + _TASK_ROW_SQL


def task_claim_next(*, reviewer: User, queue: Queue) -> Claim | None:
    """Lease the next task of `queue` to `reviewer`, or return the one they already hold.

    One statement after a read of the reviewer's standing (plus a count of graphic exposures on
    queues with a daily cap): the pick, the
    lease and its audit row commit together. Rows are locked with SKIP LOCKED, so concurrent
    claimers never wait on each other and never get the same task. Returns None when nothing is
    claimable, and when the reviewer may not work live tasks here (onboarding first, or paused:
    `reviewapp.services.standing`; the workspace then shows why, the API says so with a 409).
    """
    if not queue_standing_for(queue=queue, reviewer=reviewer).live:
        return None
    actor = Actor.of(reviewer)
    with _server_bound_cursor() as cursor:
        cursor.execute(
            _CLAIM_SQL,
            {
                "queue": queue.pk,
                "reviewer": reviewer.pk,
                "lease": queue.lease_seconds,
                "graphic_allowed": _graphic_allowed(reviewer, queue),
                "actor_label": actor.label,
                "request_id": current_request_id.get(),
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    resumed, task = row[0], _task_from_row(row[1:], queue)
    if not resumed:
        transaction.on_commit(lambda: metrics.count("claims", queue.slug))
    return Claim(task, resumed=resumed)


def task_held(*, reviewer: User, queue: Queue) -> ReviewTask | None:
    """The task whose live lease `reviewer` holds in `queue`, or None. One read-only statement."""
    with _server_bound_cursor() as cursor:
        cursor.execute(_HELD_SQL, {"queue": queue.pk, "reviewer": reviewer.pk})
        row = cursor.fetchone()
    return None if row is None else _task_from_row(row[1:], queue)


def _task_from_row(values: Sequence[Any], queue: Queue) -> ReviewTask:
    """The claim's task with its item, policy and decision, as `select_related` would load them."""
    task_end, item_end, policy_end = (
        len(_TASK_FIELDS),
        len(_TASK_FIELDS) + len(_ITEM_FIELDS),
        len(_TASK_FIELDS) + len(_ITEM_FIELDS) + len(_POLICY_FIELDS),
    )
    task = _instance(ReviewTask, _TASK_FIELDS, values[:task_end])
    task.item = _instance(ContentItem, _ITEM_FIELDS, values[task_end:item_end])
    task.policy = _instance(Policy, _POLICY_FIELDS, values[item_end:policy_end])
    decision = values[policy_end:]
    task.decision = None if task.decision_id is None else _instance(ModelDecision, _DECISION_FIELDS, decision)
    task.queue = queue
    return task


def _instance(model: type[M], fields: Sequence[models.Field], values: Sequence[Any]) -> M:
    """A model instance from raw column values, converted by each field as the ORM does."""
    converted = []
    for field, value in zip(fields, values, strict=True):
        for converter in field.get_db_converters(connection):
            value = converter(value, field, connection)
        converted.append(value)
    return model.from_db(connection.alias, [field.attname for field in fields], converted)


def _server_bound_cursor() -> CursorWrapper:
    """A cursor on Django's connection that sends parameters apart from the SQL text.

    Django's own cursors inline the parameters, so every claim is a new statement text that
    PostgreSQL parses and plans again (about as long as running it). With the parameters apart,
    psycopg prepares a statement that it sees often on a connection, when the connection allows
    it (settings: DATABASE_PREPARED_STATEMENTS), and PostgreSQL reuses the plan. Queries still go
    through Django's wrappers: errors, execute_wrapper hooks and query logging.
    """
    # The checks that connection.cursor() makes before it hands out a cursor.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    wrapper = CursorDebugWrapper if connection.queries_logged else CursorWrapper
    return wrapper(psycopg.Cursor(connection.connection), connection)


def _graphic_allowed(reviewer: User, queue: Queue) -> bool:
    if queue.graphic_daily_cap is None:
        return True
    from .wellness import graphic_exposures_today

    return graphic_exposures_today(reviewer=reviewer, queue=queue) < queue.graphic_daily_cap


def task_lease_renew(*, task_id: int, reviewer: User) -> datetime:
    """Extend the reviewer's lease (heartbeat). Compare-and-set: fails if they no longer hold it."""
    with _server_bound_cursor() as cursor:
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


# Lock the task, record the skip once, drop the reviewer's lease if they hold it, cancel their open
# assignment on it (a task reserved for them that they skip is released to the others once no
# reservation is left), and audit a first skip; the lock makes a concurrent submit or claim of the
# same row wait for the outcome. The task row is updated once, so `released` does both writes.
_RELEASE_SQL = """
WITH task AS (
    SELECT id, item_id, leased_by_id FROM reviewapp_reviewtask WHERE id = %(task)s FOR UPDATE
), skip AS (
    INSERT INTO reviewapp_taskskip (task_id, reviewer_id, reason)
    SELECT id, %(reviewer)s, %(reason)s FROM task
    ON CONFLICT (task_id, reviewer_id) DO NOTHING
    RETURNING task_id
), unassigned AS (
    UPDATE reviewapp_taskassignment ta SET cancelled_at = statement_timestamp()
      FROM task WHERE ta.task_id = task.id AND ta.reviewer_id = %(reviewer)s
       AND ta.fulfilled_at IS NULL AND ta.cancelled_at IS NULL
    RETURNING ta.task_id
), released AS (
    UPDATE reviewapp_reviewtask t
       SET leased_by_id = CASE WHEN task.leased_by_id = %(reviewer)s THEN NULL ELSE t.leased_by_id END,
           lease_expires_at = CASE WHEN task.leased_by_id = %(reviewer)s THEN NULL ELSE t.lease_expires_at END,
           assigned = t.assigned AND (NOT EXISTS (SELECT FROM unassigned) OR EXISTS (
               SELECT 1 FROM reviewapp_taskassignment o
                WHERE o.task_id = task.id AND o.reviewer_id <> %(reviewer)s
                  AND o.fulfilled_at IS NULL AND o.cancelled_at IS NULL))
      FROM task WHERE t.id = task.id
       AND (task.leased_by_id = %(reviewer)s OR EXISTS (SELECT FROM unassigned))
), audit AS (
    INSERT INTO reviewapp_auditevent
        (actor_id, actor_label, action, object_type, object_id, item_id, after, request_id)
    SELECT %(reviewer)s, %(actor_label)s, 'task.skipped', 'task', task.id::text, task.item_id,
           jsonb_build_object('reason', %(reason)s::text), %(request_id)s
      FROM task JOIN skip ON skip.task_id = task.id
)
SELECT id FROM task
"""


def task_release(*, task_id: int, reviewer: User, reason: str) -> None:
    """Skip: give the task back and never hand it to this reviewer again. Idempotent.

    One statement that locks the task row. A reason is required so leads can see why items are
    skipped. Raises ReviewTask.DoesNotExist for an unknown task.
    """
    reason = reason.strip()[:200]
    if not reason:
        raise ReasonMissing("Say why you are skipping this item.")
    with _server_bound_cursor() as cursor:
        cursor.execute(
            _RELEASE_SQL,
            {
                "task": task_id,
                "reviewer": reviewer.pk,
                "reason": reason,
                "actor_label": Actor.of(reviewer).label,
                "request_id": current_request_id.get(),
            },
        )
        if cursor.fetchone() is None:
            raise ReviewTask.DoesNotExist(f"No review task {task_id}.")


def task_escalate(*, task_id: int, reviewer: User, note: str) -> ReviewTask:
    """Send a task to policy leads instead of labelling it. Needs the reviewer's live lease.

    Locks the task row.
    """
    from labeling.models import AdjudicationReason
    from labeling.services.consensus import adjudication_request

    note = note.strip()[:2000]
    with transaction.atomic():
        # The lease is checked against the database clock as the row is locked: no second query.
        task = (
            ReviewTask.objects.select_for_update()
            .annotate(lease_live=models.Q(lease_expires_at__gt=Now()))
            .get(pk=task_id)
        )
        _check_holds_lease(task, reviewer, lease_live=bool(task.lease_live))  # type: ignore[attr-defined]
        adjudication_request(task=task, reason=AdjudicationReason.ESCALATED, actor=Actor.of(reviewer), note=note)
    return task


def _check_holds_lease(task: ReviewTask, reviewer: User, *, lease_live: bool) -> None:
    if task.status != TaskStatus.OPEN:
        raise LeaseLost("This item is no longer open for review.")
    if task.leased_by_id != reviewer.pk or not lease_live:
        raise LeaseLost("Your claim on this item has expired; claim it again to act on it.")
