"""Bulk actions of policy leads over an item search (`/items/` and POST /api/v1/items/bulk).

A bulk action takes the items matching the search's filters (every page, not just the one shown)
and acts on their work:

- `requeue`: each open task goes back to its queue as if new (`review_task_requeue`): any lease
  ends (a stuck or abandoned claim is cleared), open assignments are cancelled, and the due time
  restarts from the queue's SLA. Answers already given stay: nothing reviewers did is discarded.
- `move`: each open task moves to another active queue (`review_task_move`), its lease and
  assignments ended; a task whose item already has an open task under the policy there stays.
- `relabel`: each matching item's current gold label (under the search's policy, when it names
  one) is sent for re-review: a RELABEL task in the chosen queue (`labeling.services.relabel`),
  unless it was sent since that gold label was decided or the queue already has it open.
- `assign`: each open task is reserved for one named reviewer (`review_task_assign`), who must
  be able to work its queue and must not have answered the item already; they are notified once.
- `reprioritise`: each open task gets the given priority (higher is served first).

Task actions select the open tasks (honeypots never: they measure reviewers, not items) of the
matching items, under the search's policy when it names one. At most BULK_MAX_TASKS tasks (gold
labels for `relabel`) are taken at once: a larger selection is refused whole, to be narrowed.
Tasks are locked in id order and re-checked under the lock; those left as they were are listed
with the reason in `BulkAction.skipped`.

Idempotent by the client's key (`BulkAction.key`): the first request with a key applies the action
and records the result; any later request with it (a retried POST, a double click, a re-posted
form) changes nothing and returns that first result. A refused request (nothing to act on, too
many) stores nothing, so its key stays unused.

Audit: per task (item) changed, one `bulk.<action>` event on the item, naming the BulkAction
(object `bulk_action <id>`) and the task; one `bulk_action.run` summary event. Shared transitions
also write their own events (`task.created` for relabel, `task.assigned` for assign).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from labeling.models import Annotation, GoldLabel
from labeling.services.relabel import gold_with_pending_review, review_tasks_open

from ..access import is_lead
from ..audit import Actor, audit_event, audit_record, audit_record_many
from ..db import db_now
from ..errors import Conflict, Invalid
from ..models import AssignmentReason, AuditEvent, BulkAction, Queue, QueueKind, ReviewTask, TaskReason, TaskStatus
from .assignments import review_task_assign, review_task_assignments_close
from .notifications import notify
from .search import OPEN_TASK, ItemFilters, item_search_queryset
from .tasks import review_task_move, review_task_reprioritise, review_task_requeue

BULK_MAX_TASKS = 500
PRIORITY_LIMIT = 1_000_000.0
MAX_NOTE_CHARS = 2000

REQUEUE, MOVE, RELABEL, ASSIGN, REPRIORITISE = "requeue", "move", "relabel", "assign", "reprioritise"
# action → (what people read, what it does to each target)
ACTIONS: dict[str, tuple[str, str]] = {
    REQUEUE: ("Requeue", "ends any claim and cancels assignments; the task waits in its queue with a fresh due time"),
    MOVE: ("Move to another queue", "moves the open task to the chosen queue, claim and assignments ended"),
    RELABEL: ("Send to relabel", "opens a re-review (relabel) task for the current gold label in the chosen queue"),
    ASSIGN: ("Assign to a reviewer", "reserves the open task for the named reviewer, who is served it first"),
    REPRIORITISE: ("Set priority", "sets the open task's priority (higher is served first)"),
}


@dataclass(frozen=True)
class BulkParams:
    """What an action needs besides its targets: a queue (move, relabel), a reviewer and an
    optional note (assign), a priority (reprioritise)."""

    queue: Queue | None = None
    reviewer: User | None = None
    priority: float | None = None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.queue is not None:
            params["queue"] = self.queue.slug
        if self.reviewer is not None:
            params["reviewer"] = self.reviewer.get_username()
        if self.priority is not None:
            params["priority"] = self.priority
        if self.note:
            params["note"] = self.note
        return params


@dataclass(frozen=True)
class BulkPreview:
    action: str
    matched: int  # tasks (gold labels for relabel) the action would take, at most BULK_MAX_TASKS
    items: int  # distinct items among them
    over_cap: bool  # the selection holds more than BULK_MAX_TASKS

    @property
    def unit(self) -> str:
        return "current gold label" if self.action == RELABEL else "open task"


@dataclass(frozen=True)
class BulkRun:
    bulk: BulkAction
    replayed: bool  # the key was used before: nothing changed now, `bulk` is the first result


def bulk_params_check(*, action: str, params: BulkParams) -> None:
    """Invalid unless `action` is known and `params` hold what it needs, usably."""
    if action not in ACTIONS:
        raise Invalid(f"Unknown bulk action {action!r}: choose one of {', '.join(ACTIONS)}.")
    if action in (MOVE, RELABEL):
        if params.queue is None:
            raise Invalid("Choose the queue to send the tasks to.")
        if not params.queue.is_active or params.queue.kind == QueueKind.ADJUDICATION:
            raise Invalid(f"Queue {params.queue.slug} takes no tasks: choose an active review, audit or appeals queue.")
    if action == ASSIGN:
        if params.reviewer is None or not params.reviewer.is_active:
            raise Invalid("Name an active reviewer to assign the tasks to.")
        if len(params.note) > MAX_NOTE_CHARS:
            raise Invalid(f"The note is longer than {MAX_NOTE_CHARS} characters.")
    if action == REPRIORITISE and (
        params.priority is None or not math.isfinite(params.priority) or abs(params.priority) > PRIORITY_LIMIT
    ):
        raise Invalid(f"Give a priority between {-PRIORITY_LIMIT:g} and {PRIORITY_LIMIT:g}.")


def bulk_targets(*, action: str, filters: ItemFilters) -> QuerySet[Any]:
    """The open tasks (current gold labels for relabel) of the items matching `filters`."""
    items = item_search_queryset(filters=filters)
    under = {} if filters.policy is None else {"policy": filters.policy}
    if action == RELABEL:
        return GoldLabel.objects.filter(item__in=items, superseded_by__isnull=True, **under)
    return ReviewTask.objects.filter(OPEN_TASK, item__in=items, **under)


def bulk_action_preview(*, action: str, filters: ItemFilters) -> BulkPreview:
    """How many targets the action would take now (read only; one query)."""
    if action not in ACTIONS:
        raise Invalid(f"Unknown bulk action {action!r}: choose one of {', '.join(ACTIONS)}.")
    found = list(
        bulk_targets(action=action, filters=filters).order_by("pk").values_list("pk", "item_id")[: BULK_MAX_TASKS + 1]
    )
    taken = found[:BULK_MAX_TASKS]
    return BulkPreview(
        action=action,
        matched=len(taken),
        items=len({item_id for _, item_id in taken}),
        over_cap=len(found) > BULK_MAX_TASKS,
    )


def bulk_action_run(
    *, key: UUID, action: str, params: BulkParams, filters: ItemFilters, query: str, actor: Actor
) -> BulkRun:
    """Apply `action` to the targets of `filters` once per `key` (see the module docstring).

    One transaction: the BulkAction row (its unique key is held from its insert to commit, so a
    concurrent request with the same key waits and then finds the result), the targets locked in
    id order, each change with its audit event. Raises Invalid, storing nothing, for bad params,
    no target, or more than BULK_MAX_TASKS; Conflict when the key was used for another action.
    """
    bulk_params_check(action=action, params=params)
    with transaction.atomic():
        existing = BulkAction.objects.filter(key=key).first()
        if existing is not None:
            return _replayed(existing, action=action, actor=actor)
        try:
            with transaction.atomic():
                bulk = BulkAction.objects.create(
                    key=key,
                    action=action,
                    params=params.as_json(),
                    query=query[:2000],
                    actor_id=actor.id,
                    actor_label=actor.label,
                )
        except IntegrityError:  # a request with the same key committed meanwhile
            return _replayed(BulkAction.objects.get(key=key), action=action, actor=actor)
        ids = list(
            bulk_targets(action=action, filters=filters)
            .order_by("pk")
            .values_list("pk", flat=True)[: BULK_MAX_TASKS + 1]
        )
        _check_selection(action, len(ids))
        events, skipped = HANDLERS[action](ids=ids, params=params, bulk=bulk, actor=actor)
        audit_record_many(events)
        bulk.matched, bulk.changed, bulk.skipped = len(ids), len(events), skipped
        bulk.save(update_fields=["matched", "changed", "skipped"])
        audit_record(
            actor=actor,
            action="bulk_action.run",
            object_type="bulk_action",
            object_id=bulk.pk,
            after={
                "action": action,
                "params": bulk.params,
                "query": bulk.query,
                "matched": bulk.matched,
                "changed": bulk.changed,
                "skipped": len(skipped),
            },
        )
    return BulkRun(bulk=bulk, replayed=False)


def _replayed(bulk: BulkAction, *, action: str, actor: Actor) -> BulkRun:
    if bulk.action != action or bulk.actor_id != actor.id:
        raise Conflict("This request key was already used for another bulk action: start again from the search.")
    return BulkRun(bulk=bulk, replayed=True)


def _check_selection(action: str, count: int) -> None:
    if count > BULK_MAX_TASKS:
        unit = "current gold labels" if action == RELABEL else "open tasks"
        raise Invalid(
            f"This search selects more than {BULK_MAX_TASKS} {unit}; a bulk action takes at most "
            f"{BULK_MAX_TASKS} at once: narrow the search (a policy, status or date) and run it in parts."
        )
    if count == 0:
        if action == RELABEL:
            raise Invalid("No matching item has a current gold label: nothing to send to relabel.")
        raise Invalid(f"No matching item has an open task: nothing to {ACTIONS[action][0].lower()}.")


Handled = tuple[list[AuditEvent], list[dict[str, Any]]]


def _event(bulk: BulkAction, actor: Actor, task: ReviewTask, *, before: Any = None, after: Any = None) -> AuditEvent:
    """The item's `bulk.<action>` event: it names the bulk action (the object) and the task."""
    return audit_event(
        actor=actor,
        action=f"bulk.{bulk.action}",
        object_type="bulk_action",
        object_id=bulk.pk,
        item_id=task.item_id,
        before=before,
        after={"bulk_action": bulk.pk, "task": task.pk, **(after or {})},
    )


def _skip(task: ReviewTask, why: str) -> dict[str, Any]:
    return {"task": task.pk, "item": task.item_id, "external_id": task.item.external_id, "why": why}


def _locked_open_tasks(ids: list[int]) -> tuple[list[ReviewTask], list[dict[str, Any]]]:
    """The tasks locked in id order (saleor's rule: one order, no deadlock); those that stopped
    being open between the search and the lock are skipped."""
    tasks = list(
        ReviewTask.objects.select_for_update(of=("self",))
        .select_related("queue", "item", "leased_by")
        .filter(pk__in=ids)
        .order_by("pk")
    )
    live = [task for task in tasks if task.status == TaskStatus.OPEN]
    gone = [_skip(task, f"no longer open ({task.get_status_display().lower()})") for task in tasks if task not in live]
    return live, gone


def _requeue(*, ids: list[int], params: BulkParams, bulk: BulkAction, actor: Actor) -> Handled:
    tasks, skipped = _locked_open_tasks(ids)
    now = db_now()
    events = []
    for task in tasks:
        before = {
            "leased_by": task.leased_by.get_username() if task.leased_by else None,
            "lease_expires_at": task.lease_expires_at,
            "due_at": task.due_at,
        }
        cancelled = review_task_assignments_close(task=task, reviewer=None, fulfilled=False)
        review_task_requeue(task=task, now=now)
        after = {"leased_by": None, "due_at": task.due_at, "assignments_cancelled": cancelled}
        events.append(_event(bulk, actor, task, before=before, after=after))
    return events, skipped


def _move(*, ids: list[int], params: BulkParams, bulk: BulkAction, actor: Actor) -> Handled:
    target = params.queue
    assert target is not None  # bulk_params_check
    tasks, skipped = _locked_open_tasks(ids)
    now = db_now()
    events = []
    for task in tasks:
        if task.queue_id == target.pk:
            skipped.append(_skip(task, f"already in queue {target.slug}"))
            continue
        old = task.queue
        try:
            with transaction.atomic():  # the queue may hold an open task of the same item and policy
                review_task_move(task=task, queue=target, now=now)
        except IntegrityError:
            task.queue = old
            skipped.append(_skip(task, f"queue {target.slug} already has an open task for this item and policy"))
            continue
        cancelled = review_task_assignments_close(task=task, reviewer=None, fulfilled=False)
        after = {"queue": target.slug, "due_at": task.due_at, "assignments_cancelled": cancelled}
        events.append(_event(bulk, actor, task, before={"queue": old.slug}, after=after))
    return events, skipped


def _relabel(*, ids: list[int], params: BulkParams, bulk: BulkAction, actor: Actor) -> Handled:
    target = params.queue
    assert target is not None  # bulk_params_check
    golds = GoldLabel.objects.filter(pk__in=ids).select_related("policy", "item", "task").order_by("pk")
    pending = set(gold_with_pending_review(golds, reason=TaskReason.RELABEL).values_list("pk", flat=True))
    todo = [gold for gold in golds if gold.pk not in pending]
    opened = review_tasks_open(todo, queue=target, reason=TaskReason.RELABEL, actor=actor)
    new_tasks = {(t.item_id, t.policy_id): t for t in ReviewTask.objects.filter(pk__in=opened).select_related("item")}
    events, skipped = [], []
    for gold in golds:
        task = new_tasks.get((gold.item_id, gold.policy_id))
        if task is None:
            why = (
                "already sent for re-review since its current gold label"
                if gold.pk in pending
                else f"queue {target.slug} already has an open task for this item and policy"
            )
            skipped.append({"gold": gold.pk, "item": gold.item_id, "external_id": gold.item.external_id, "why": why})
            continue
        after = {"queue": target.slug, "gold_label": gold.pk, "gold_version": gold.version, "labels": gold.labels}
        events.append(_event(bulk, actor, task, after=after))
    return events, skipped


def _assign(*, ids: list[int], params: BulkParams, bulk: BulkAction, actor: Actor) -> Handled:
    reviewer = params.reviewer
    assert reviewer is not None  # bulk_params_check
    tasks, skipped = _locked_open_tasks(ids)
    lead = is_lead(reviewer)
    member_of = set(reviewer.review_queues.values_list("pk", flat=True))
    answered = set(
        Annotation.objects.filter(
            reviewer=reviewer, retracted_at__isnull=True, item_id__in=[task.item_id for task in tasks]
        ).values_list("item_id", "policy_id")
    )
    name = reviewer.get_username()
    events = []
    for task in tasks:
        if not lead and task.queue_id not in member_of:
            skipped.append(_skip(task, f"{name} is not a member of queue {task.queue.slug}"))
        elif (task.item_id, task.policy_id) in answered:
            skipped.append(_skip(task, f"{name} already answered this item"))
        elif not review_task_assign(
            task=task, reviewers=[reviewer], reason=AssignmentReason.ASSIGNED, note=params.note, actor=actor
        ):
            skipped.append(_skip(task, f"already assigned to {name}"))
        else:
            events.append(_event(bulk, actor, task, after={"reviewer": name, "note": params.note}))
    if events:
        count = f"{len(events)} task{'s' if len(events) != 1 else ''}"
        note = f": {params.note}" if params.note else ""
        notify(users=[reviewer], kind="assigned", text=f"{actor.label} assigned you {count}{note}", url="/")
    return events, skipped


def _reprioritise(*, ids: list[int], params: BulkParams, bulk: BulkAction, actor: Actor) -> Handled:
    priority = params.priority
    assert priority is not None  # bulk_params_check
    tasks, skipped = _locked_open_tasks(ids)
    events = []
    for task in tasks:
        if task.priority == priority:
            skipped.append(_skip(task, f"already at priority {priority:g}"))
            continue
        before = {"priority": task.priority}
        review_task_reprioritise(task=task, priority=priority)
        events.append(_event(bulk, actor, task, before=before, after={"priority": priority}))
    return events, skipped


HANDLERS: dict[str, Callable[..., Handled]] = {
    REQUEUE: _requeue,
    MOVE: _move,
    RELABEL: _relabel,
    ASSIGN: _assign,
    REPRIORITISE: _reprioritise,
}
