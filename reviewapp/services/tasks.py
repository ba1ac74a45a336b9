"""ReviewTask state changes: every write of a task's status, answer count or resolution is here.

`grep -rn "def review_task_"` lists them:

    (none)     → open       review_task_open            ingest, dataset import, appeals, honeypots, relabel, AL
    open       → open       review_task_count_answer    an accepted answer that does not meet the requirement
    open       → completed  review_task_complete        the answer path (one task) and crowd import (many)
    completed  → resolved   review_task_resolve         consensus made gold, or a honeypot was scored
    open/compl → escalated  review_task_escalate        consensus disagreement, or a reviewer's escalation
    escalated  → completed  review_task_decide          a lead's decision made gold
    compl/esc  → open       review_task_reopen          adaptive redundancy, one more reviewer after a send back
    escalated  → open       review_task_send_back       a lead sends the answers back to the reviewers who gave them
    any        → open       review_task_retract_answer  an answer undone within the undo window
    open       → open       review_task_requeue         a lead's bulk requeue (lease ended, SLA restarted)
    open       → open       review_task_move            a lead's bulk move to another queue
    open       → open       review_task_reprioritise    a lead's bulk change of priority

Each expects the caller to hold the task row lock (`select_for_update`, or the one statement that
locks here) inside the caller's transaction, and to audit the business event that caused it where
that event is the caller's (an annotation submitted or undone, an adjudication requested or sent
back). `review_task_open` and `review_task_complete` write their own `task.created` and
`task.completed` events, since several paths share them and must record them with one payload.

Claims and leases (who holds an open task, never its status) are in `claims.py` (`task_claim_next`,
`task_release`, `task_lease_renew`; `task_escalate` calls `review_task_escalate` through
`adjudication_request`) and `leases.py` (`task_leases_expire`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import connection

from ..audit import Actor, audit_event, audit_record_many
from ..context import current_request_id
from ..db import copy_rows, stage_table
from ..models import AuditEvent, Queue, ReviewTask, TaskStatus


@dataclass
class TaskSpec:
    item_id: int
    policy_id: int
    queue: Queue
    reason: str
    priority: float
    sampling_propensity: float = 1.0
    decision_id: int | None = None


TASK_STAGE = """
    ord int, item_id bigint, policy_id bigint, decision_id bigint, queue_id bigint, reason text,
    priority float8, sla_minutes int, sampling_propensity float8
"""


def review_task_open(*, specs: Sequence[TaskSpec], actor: Actor) -> list[tuple[TaskSpec, int]]:
    """(nothing) → open: open tasks for specs that have no open task yet in the same (item, policy, queue).

    Call inside a transaction. Writes a `task.created` audit event per task. Due times come from
    the database clock plus the queue's SLA. Returns (spec, task id) for the tasks created.
    """
    if not specs:
        return []
    stage_table("stage_tasks", TASK_STAGE)
    copy_rows(
        "stage_tasks",
        (
            "ord",
            "item_id",
            "policy_id",
            "decision_id",
            "queue_id",
            "reason",
            "priority",
            "sla_minutes",
            "sampling_propensity",
        ),
        (
            (
                ord_,
                s.item_id,
                s.policy_id,
                s.decision_id,
                s.queue.pk,
                s.reason,
                s.priority,
                s.queue.sla_minutes,
                s.sampling_propensity,
            )
            for ord_, s in enumerate(specs)
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH new AS (
                INSERT INTO reviewapp_reviewtask
                    (item_id, policy_id, decision_id, queue_id, reason, priority, due_at, sampling_propensity,
                     status)
                SELECT DISTINCT ON (item_id, policy_id, queue_id)
                       item_id, policy_id, decision_id, queue_id, reason, priority,
                       statement_timestamp() + make_interval(mins => sla_minutes), sampling_propensity, 'open'
                FROM stage_tasks ORDER BY item_id, policy_id, queue_id, ord
                ON CONFLICT (item_id, policy_id, queue_id) WHERE status = 'open' DO NOTHING
                RETURNING id, item_id, policy_id, queue_id, reason
            ), audit AS (
                INSERT INTO reviewapp_auditevent
                    (actor_id, actor_label, action, object_type, object_id, item_id, after, request_id)
                SELECT %s, %s, 'task.created', 'task', new.id::text, new.item_id,
                       jsonb_build_object('queue_id', new.queue_id, 'policy_id', new.policy_id,
                                          'reason', new.reason, 'status', 'open'),
                       %s
                FROM new
            )
            SELECT id, item_id, policy_id, queue_id FROM new
            """,
            [actor.id, actor.label, current_request_id.get()],
        )
        by_key = {(s.item_id, s.policy_id, s.queue.pk): s for s in reversed(specs)}
        return [(by_key[(i, p, q)], task_id) for task_id, i, p, q in cursor.fetchall()]


# Both forms of the completion write the same row: the live annotation count, a requirement at
# least that count, and the end of every lease except a live one held by someone other than the
# answering reviewer (a Label Studio answer leaves an in-app reviewer's lease alone).
# The first takes counts the caller knows (the answer path, which has just counted the answer on
# the locked row); the second reads them from the live annotations (bulk import, which inserted
# them in this transaction).
COMPLETE_COUNTED = """
    UPDATE reviewapp_reviewtask t
       SET annotation_count = c.n, extra_annotations = GREATEST(c.n - q.required_annotations, 0),
           status = 'completed', completed_at = COALESCE(%(now)s, statement_timestamp()),
           leased_by_id = CASE WHEN t.lease_expires_at > COALESCE(%(now)s, statement_timestamp())
                               AND t.leased_by_id <> %(answered_by)s THEN t.leased_by_id END,
           lease_expires_at = CASE WHEN t.lease_expires_at > COALESCE(%(now)s, statement_timestamp())
                                   AND t.leased_by_id <> %(answered_by)s THEN t.lease_expires_at END
      FROM unnest(%(ids)s::bigint[], %(counts)s::integer[]) AS c(task_id, n), reviewapp_queue q
     WHERE t.id = c.task_id AND q.id = t.queue_id AND t.status = 'open'
    RETURNING t.id, t.item_id, t.annotation_count
"""
# Machine-made (LLM) answers never fill a human's required place (labeling.llm).
COMPLETE_COUNTING = """
    UPDATE reviewapp_reviewtask t
       SET annotation_count = c.n, extra_annotations = GREATEST(c.n - q.required_annotations, 0),
           status = 'completed', completed_at = COALESCE(%(now)s, statement_timestamp()),
           leased_by_id = CASE WHEN t.lease_expires_at > COALESCE(%(now)s, statement_timestamp())
                               AND t.leased_by_id <> %(answered_by)s THEN t.leased_by_id END,
           lease_expires_at = CASE WHEN t.lease_expires_at > COALESCE(%(now)s, statement_timestamp())
                                   AND t.leased_by_id <> %(answered_by)s THEN t.lease_expires_at END
      FROM (SELECT task_id, count(*) AS n FROM labeling_annotation
             WHERE task_id = ANY(%(ids)s) AND retracted_at IS NULL AND source <> 'llm'
             GROUP BY task_id) c,
           reviewapp_queue q
     WHERE t.id = c.task_id AND q.id = t.queue_id AND t.status = 'open'
    RETURNING t.id, t.item_id, t.annotation_count
"""
LOCK_OPEN = "SELECT id FROM reviewapp_reviewtask WHERE id = ANY(%s) AND status = 'open' ORDER BY id FOR UPDATE"


def review_task_complete(
    *,
    task_ids: Sequence[int],
    actor: Actor,
    annotation_counts: Mapping[int, int] | None = None,
    answered_by: User | None = None,
    now: datetime | None = None,
    import_id: str | None = None,
    audit_with: Sequence[AuditEvent] = (),
) -> list[int]:
    """Open → completed: the task has its answers and waits for consensus. Returns the ids completed.

    Sets each open task's live annotation count (`annotation_counts`, or counted from its live
    annotations), makes its requirement at least that count, ends every lease except a live one
    held by someone other than `answered_by`, and writes one `task.completed` event per task
    (before/after status, annotation count, the crowd `import_id` or null) — together with the
    caller's `audit_with` events. Tasks that are not open are left alone, so a retried import
    completes nothing twice.

    Locks: several tasks are locked in id order first (two imports never deadlock); a single task
    is the answer path's, whose row the caller has locked, so it costs one UPDATE and one INSERT.
    `now` is the caller's database clock (default: this statement's).
    """
    if not task_ids:
        return []
    params = {
        "ids": list(task_ids),
        "counts": [annotation_counts[task_id] for task_id in task_ids] if annotation_counts is not None else None,
        "now": now,
        "answered_by": answered_by.pk if answered_by is not None else None,
    }
    with connection.cursor() as cursor:
        if len(task_ids) > 1:
            cursor.execute(LOCK_OPEN, [params["ids"]])
        cursor.execute(COMPLETE_COUNTED if annotation_counts is not None else COMPLETE_COUNTING, params)
        completed = cursor.fetchall()
    events = [*audit_with] + [
        audit_event(
            actor=actor,
            action="task.completed",
            object_type="task",
            object_id=task_id,
            item_id=item_id,
            before={"status": TaskStatus.OPEN},
            after={"status": TaskStatus.COMPLETED, "annotation_count": count, "import_id": import_id},
        )
        for task_id, item_id, count in completed
    ]
    if len(task_ids) == 1:
        AuditEvent.objects.bulk_create(events)  # one INSERT: the hot path's statement count is pinned
    else:
        audit_record_many(events)  # COPY: an import completes thousands
    return [task_id for task_id, _item_id, _count in completed]


def review_task_count_answer(
    *, task: ReviewTask, reviewer: User, now: datetime, audit_with: Sequence[AuditEvent]
) -> bool:
    """An accepted answer counted on the open task the caller has locked; returns whether it completed.

    The answering reviewer's lease ends, and so does an expired one; a live lease of someone else
    stays (a Label Studio answer leaves an in-app reviewer's lease alone). The answer that meets
    the requirement completes the task through `review_task_complete`. Either way: one UPDATE of
    the task and one INSERT of `audit_with` (the answer's event) and any completion event.
    """
    holds_lease = task.leased_by_id == reviewer.pk and task.lease_expires_at > now
    task.annotation_count += 1
    if holds_lease or task.lease_expires_at is None or task.lease_expires_at <= now:
        task.leased_by = None
        task.lease_expires_at = None
    if task.annotation_count < task.required_annotations:
        task.save(update_fields=["annotation_count", "leased_by", "lease_expires_at"])
        AuditEvent.objects.bulk_create(audit_with)
        return False
    review_task_complete(
        task_ids=[task.pk],
        actor=Actor.of(reviewer),
        annotation_counts={task.pk: task.annotation_count},
        answered_by=reviewer,
        now=now,
        audit_with=audit_with,
    )
    # What the UPDATE wrote, for the caller's copy of the row.
    task.status, task.completed_at = TaskStatus.COMPLETED, now
    task.extra_annotations = max(task.annotation_count - task.queue.required_annotations, 0)
    return True


def review_task_resolve(*, task: ReviewTask, now: datetime) -> None:
    """Completed → resolved: consensus was taken (gold made, or a honeypot scored)."""
    task.resolved_at = now
    task.save(update_fields=["resolved_at"])


def review_task_escalate(*, task: ReviewTask, resolved_at: datetime | None = None) -> str:
    """Open or completed → escalated to policy leads; any lease ends. Returns the status before.

    `resolved_at` is set when consensus sent it (the task is resolved into an adjudication); a
    reviewer's escalation of open work leaves it unset.
    """
    before = task.status
    task.status = TaskStatus.ESCALATED
    task.leased_by = None
    task.lease_expires_at = None
    task.resolved_at = resolved_at
    task.save(update_fields=["status", "leased_by", "lease_expires_at", "resolved_at"])
    return before


def review_task_decide(*, task: ReviewTask, now: datetime) -> None:
    """Escalated → completed and resolved: a lead's decision made the gold label."""
    task.status = TaskStatus.COMPLETED
    task.completed_at = task.completed_at or now
    task.resolved_at = now
    task.save(update_fields=["status", "completed_at", "resolved_at"])


def review_task_reopen(*, task: ReviewTask, extra_annotations: int) -> None:
    """Completed or escalated → open for more independent answers (adaptive redundancy, a lead
    sending the item back); `extra_annotations` raises its requirement above the queue's."""
    task.extra_annotations = extra_annotations
    task.status = TaskStatus.OPEN
    task.completed_at = None
    task.resolved_at = None
    task.save(update_fields=["extra_annotations", "status", "completed_at", "resolved_at"])


def review_task_retract_answer(*, task: ReviewTask, reviewer: User, now: datetime) -> None:
    """An answer was undone: the task is open again, one answer short, and leased back to the
    reviewer who undid it unless someone holds a live lease on it."""
    task.annotation_count -= 1
    task.status = TaskStatus.OPEN
    task.completed_at = None
    if task.leased_by_id is None or task.lease_expires_at <= now:
        task.leased_by = task.last_leased_by = reviewer
        task.lease_expires_at = now + timedelta(seconds=task.queue.lease_seconds)
        task.claimed_at = now
    task.save(
        update_fields=[
            "annotation_count",
            "status",
            "completed_at",
            "leased_by",
            "lease_expires_at",
            "claimed_at",
            "last_leased_by",
        ]
    )


def review_task_requeue(*, task: ReviewTask, now: datetime) -> None:
    """Open → open, back in its queue as if new: any lease ends (a stuck or abandoned claim is
    cleared, so the next reviewer can take it at once) and the due time restarts from the queue's
    SLA. Answers already given stay. The caller cancels open assignments and audits."""
    task.leased_by = None
    task.lease_expires_at = None
    task.due_at = now + timedelta(minutes=task.queue.sla_minutes)
    task.save(update_fields=["leased_by", "lease_expires_at", "due_at"])


def review_task_move(*, task: ReviewTask, queue: Queue, now: datetime) -> None:
    """Open → open in another `queue`: any lease ends and the due time restarts from the new
    queue's SLA; answers and priority stay. The caller has checked that the queue holds no open
    task of the same item and policy (a unique constraint would refuse it), cancels open
    assignments (they reserved the task in the old queue) and audits."""
    task.queue = queue
    task.leased_by = None
    task.lease_expires_at = None
    task.due_at = now + timedelta(minutes=queue.sla_minutes)
    task.save(update_fields=["queue", "leased_by", "lease_expires_at", "due_at"])


def review_task_reprioritise(*, task: ReviewTask, priority: float) -> None:
    """Open → open with another priority (higher is served first). The caller audits."""
    task.priority = priority
    task.save(update_fields=["priority"])


def review_task_send_back(*, task: ReviewTask, withdrawn: int) -> None:
    """Escalated → open, `withdrawn` answers short: a lead sent them back to their reviewers (who
    answer again under reservations; `reviewapp.services.assignments`). The requirement stays."""
    task.annotation_count = max(task.annotation_count - withdrawn, 0)
    task.status = TaskStatus.OPEN
    task.completed_at = None
    task.resolved_at = None
    task.save(update_fields=["annotation_count", "status", "completed_at", "resolved_at"])
