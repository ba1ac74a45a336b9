"""A reviewer's standing in a queue: qualified or onboarding, active or paused.

The rule: a reviewer works live tasks in a queue iff (the queue asks for no onboarding, or they
passed its onboarding set: `qualified_at`) and they are not paused. Claims (workspace and API)
give a reviewer who is not live nothing; the workspace shows why instead of an empty queue.

A pause is set by a lead (reason required) or automatically by the honeypot rule
(`labeling.services.honeypots.honeypot_pause_check`). A lead lifts any pause; passing the
onboarding set lifts an automatic one (`labeling.services.onboarding`). Every change writes an
audit event on the reviewer (object_type "reviewer", `after.queue` the queue id) and notifies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q

from labeling.models import Annotation, AnnotationSource, HoneypotCheck

from ..audit import Actor, audit_record
from ..db import db_now
from ..errors import Conflict, Invalid
from ..models import Queue, QueueStanding, ReviewTask, StandingStatus, TaskStatus
from .notifications import notify

# Items in the set an automatically paused reviewer answers to work again, in a queue that asks
# no onboarding of newcomers (there is no set of its own to re-take).
REQUALIFY_SIZE = 10
MAX_REASON = 2000


@dataclass(frozen=True)
class Standing:
    """What the workspace and the lead pages show about one reviewer in one queue."""

    queue: Queue
    reviewer_id: int
    paused: bool
    automatic: bool
    reason: str
    needs_onboarding: bool
    qualified_at: datetime | None
    changed_at: datetime | None

    @property
    def live(self) -> bool:
        return not self.paused and not self.needs_onboarding

    @property
    def may_requalify(self) -> bool:
        """An onboarding set is how they get back to live work (a lead's pause needs a lead)."""
        return not self.live and (not self.paused or self.automatic)

    @property
    def status(self) -> str:
        if self.paused:
            return "paused"
        return "onboarding" if self.needs_onboarding else "live"

    @property
    def onboarding_size(self) -> int:
        return self.queue.onboarding_size or REQUALIFY_SIZE


class NotLive(Conflict):
    """The reviewer may not work live tasks in this queue now (onboarding first, or paused)."""


def standing_of(*, queue: Queue, reviewer_id: int, row: QueueStanding | None) -> Standing:
    """The standing a stored row (or its absence) means; no query."""
    paused = row is not None and row.status == StandingStatus.PAUSED
    return Standing(
        queue=queue,
        reviewer_id=reviewer_id,
        paused=paused,
        automatic=bool(row and paused and row.automatic),
        reason=row.reason if row and paused else "",
        needs_onboarding=queue.onboarding_size > 0 and (row is None or row.qualified_at is None),
        qualified_at=row.qualified_at if row else None,
        changed_at=row.changed_at if row else None,
    )


def queue_standing_for(*, queue: Queue, reviewer: User) -> Standing:
    """The reviewer's standing in `queue` (`.live`: may they work live tasks). One query."""
    row = QueueStanding.objects.filter(queue=queue, reviewer=reviewer).first()
    return standing_of(queue=queue, reviewer_id=reviewer.pk, row=row)


def queue_standing_require(*, queue: Queue, reviewer: User) -> Standing:
    """The standing, if live; otherwise NotLive saying what to do (the API's 409)."""
    standing = queue_standing_for(queue=queue, reviewer=reviewer)
    if standing.paused:
        raise NotLive(f"You are paused in queue {queue.slug}: {standing.reason}", standing="paused")
    if standing.needs_onboarding:
        raise NotLive(
            f"Queue {queue.slug} asks you to pass its onboarding set before live work "
            f"(in the workspace, or POST /api/v1/queues/{queue.pk}/onboarding).",
            standing="onboarding",
        )
    return standing


def _locked_row(queue: Queue, reviewer: User) -> QueueStanding:
    """The (queue, reviewer) row, created if missing, locked for the caller's transaction."""
    row, _ = QueueStanding.objects.get_or_create(queue=queue, reviewer=reviewer)
    return QueueStanding.objects.select_for_update().get(pk=row.pk)


def _snapshot(row: QueueStanding) -> dict[str, object]:
    return {
        "queue": row.queue_id,
        "status": row.status,
        "automatic": row.automatic,
        "reason": row.reason,
        "qualified_at": row.qualified_at,
    }


def queue_standing_pause(
    *, queue: Queue, reviewer: User, reason: str, actor: Actor, automatic: bool = False
) -> QueueStanding:
    """Pause `reviewer` in `queue`: they claim nothing live there until resumed (or, when automatic,
    re-qualified). Leases they hold in the queue are released, so the item goes to someone else.

    Locks the standing row. A lead's pause of a paused reviewer is refused (Conflict); the honeypot
    rule never pauses twice (the caller checks under the same lock's outcome: automatic pauses of a
    paused reviewer return the row unchanged).
    """
    reason = reason.strip()[:MAX_REASON]
    if not reason:
        raise Invalid("Say why you are pausing this reviewer: they and other leads will read it.")
    with transaction.atomic():
        row = _locked_row(queue, reviewer)
        if row.status == StandingStatus.PAUSED:
            if automatic:
                return row
            raise Conflict(f"{reviewer.get_username()} is already paused in {queue.slug}.")
        before = _snapshot(row)
        row.status, row.reason, row.automatic = StandingStatus.PAUSED, reason, automatic
        row.changed_by_id, row.changed_at = actor.id, db_now()
        row.save(update_fields=["status", "reason", "automatic", "changed_by", "changed_at"])
        released = list(
            ReviewTask.objects.filter(queue=queue, status=TaskStatus.OPEN, leased_by=reviewer).values_list(
                "pk", flat=True
            )
        )
        if released:
            ReviewTask.objects.filter(pk__in=released).update(leased_by=None, lease_expires_at=None)
        audit_record(
            actor=actor,
            action="standing.paused",
            object_type="reviewer",
            object_id=reviewer.pk,
            before=before,
            after={**_snapshot(row), "released_tasks": released},
        )
        notify(
            users=[reviewer], kind="paused", text=f"Paused in {queue.name}: {reason}", url=f"/queues/{queue.pk}/work"
        )
    return row


def queue_standing_resume(*, queue: Queue, reviewer: User, reason: str, actor: Actor) -> QueueStanding:
    """A lead lifts a pause (theirs or the honeypot rule's). Locks the standing row; a reviewer
    who is not paused is refused (Conflict). Onboarding the queue asks for is still needed."""
    reason = reason.strip()[:MAX_REASON]
    if not reason:
        raise Invalid("Say why you are resuming this reviewer.")
    with transaction.atomic():
        row = _locked_row(queue, reviewer)
        if row.status != StandingStatus.PAUSED:
            raise Conflict(f"{reviewer.get_username()} is not paused in {queue.slug}.")
        before = _snapshot(row)
        _make_active(row, actor)
        audit_record(
            actor=actor,
            action="standing.resumed",
            object_type="reviewer",
            object_id=reviewer.pk,
            before=before,
            after={**_snapshot(row), "note": reason},
        )
        notify(
            users=[reviewer],
            kind="resumed",
            text=f"You may work in {queue.name} again.",
            url=f"/queues/{queue.pk}/work",
        )
    return row


def queue_standing_qualify(*, queue: Queue, reviewer: User, actor: Actor) -> QueueStanding:
    """The reviewer passed the queue's onboarding set: qualified now, and an automatic pause is
    lifted (a lead's pause stays). Locks the standing row; call inside the attempt's transaction."""
    with transaction.atomic():
        row = _locked_row(queue, reviewer)
        before = _snapshot(row)
        row.qualified_at = db_now()
        row.save(update_fields=["qualified_at"])
        lifted = row.status == StandingStatus.PAUSED and row.automatic
        if lifted:
            _make_active(row, actor)
        audit_record(
            actor=actor,
            action="standing.qualified",
            object_type="reviewer",
            object_id=reviewer.pk,
            before=before,
            after={**_snapshot(row), "pause_lifted": lifted},
        )
    return row


def _make_active(row: QueueStanding, actor: Actor) -> None:
    """Active from now: `changed_at` is also where the honeypot rule's window starts again."""
    row.status, row.reason, row.automatic = StandingStatus.ACTIVE, "", False
    row.changed_by_id, row.changed_at = actor.id, db_now()
    row.save(update_fields=["status", "reason", "automatic", "changed_by", "changed_at"])


def reviewer_standings(*, reviewer: User) -> list[Standing]:
    """The reviewer's standing in every queue they belong to or have a standing in, by queue slug."""
    rows = {row.queue_id: row for row in QueueStanding.objects.filter(reviewer=reviewer)}
    queues = Queue.objects.filter(pk__in=list(rows)) | reviewer.review_queues.all()
    return [
        standing_of(queue=q, reviewer_id=reviewer.pk, row=rows.get(q.pk)) for q in queues.distinct().order_by("slug")
    ]


@dataclass(frozen=True)
class ReviewerRow:
    """One line of the lead's reviewer list."""

    user: User
    standings: list[Standing]
    honeypots_answered: int
    honeypots_right: int
    answers_7d: int

    @property
    def honeypot_accuracy(self) -> float | None:
        return self.honeypots_right / self.honeypots_answered if self.honeypots_answered else None


def reviewers_overview() -> list[ReviewerRow]:
    """Every active person who belongs to a queue or has a standing in one: their standing per
    queue, their honeypot accuracy (people's answers, all queues) and answers in the last 7 days.
    A fixed number of queries whatever the number of reviewers."""
    users = list(
        User.objects.filter(Q(review_queues__isnull=False) | Q(queue_standings__isnull=False), is_active=True)
        .distinct()
        .order_by("username")
    )
    ids = [user.pk for user in users]
    memberships: dict[int, set[int]] = {}
    for user_id, queue_id in Queue.members.through.objects.filter(user_id__in=ids).values_list("user_id", "queue_id"):
        memberships.setdefault(user_id, set()).add(queue_id)
    rows: dict[tuple[int, int], QueueStanding] = {
        (row.reviewer_id, row.queue_id): row for row in QueueStanding.objects.filter(reviewer_id__in=ids)
    }
    queue_ids = set().union(*memberships.values(), {queue_id for _, queue_id in rows})
    queues = {queue.pk: queue for queue in Queue.objects.filter(pk__in=queue_ids)}
    honeypots = {
        row["reviewer_id"]: row
        for row in HoneypotCheck.objects.filter(reviewer_id__in=ids, correct__isnull=False)
        .exclude(annotation__source=AnnotationSource.LLM)
        .values("reviewer_id")
        .annotate(n=Count("pk"), right=Count("pk", filter=Q(correct=True)))
    }
    since = db_now() - timedelta(days=7)
    week = dict(
        Annotation.objects.filter(reviewer_id__in=ids, created_at__gte=since, retracted_at__isnull=True)
        .values("reviewer_id")
        .annotate(n=Count("pk"))
        .values_list("reviewer_id", "n")
    )
    result = []
    for user in users:
        mine = memberships.get(user.pk, set()) | {q for (u, q) in rows if u == user.pk}
        standings = [
            standing_of(queue=queues[q], reviewer_id=user.pk, row=rows.get((user.pk, q)))
            for q in sorted(mine, key=lambda q: queues[q].slug)
        ]
        stats = honeypots.get(user.pk, {"n": 0, "right": 0})
        result.append(ReviewerRow(user, standings, stats["n"], stats["right"], week.get(user.pk, 0)))
    return result
