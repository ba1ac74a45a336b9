"""Item search for policy leads: filters, keyset pagination, and saved searches.

Results are ordered newest first by (received time, id) and paginated by keyset: a page after a
cursor reads `(created_at, id) < (cursor)` from the `contentitem_received` index, so page 1,000
costs what page 1 does and rows that share a received time are neither repeated nor skipped.
There is no OFFSET and no total count (counting a million rows is what makes search slow).

Filters (all optional, combined with AND):
- `external_id`: exact; `source`: exact.
- `text`: case-insensitive substring of the item's text, at least 3 characters (read through the
  trigram index `contentitem_text_trgm`).
- `policy`: the item has a model decision or a review task under that policy; it also narrows
  `status` to that policy.
- `label`: the item's current gold label under the label's policy includes that label.
- `status`: see `STATUSES`; under `policy` when one is given, under any policy otherwise.
- received from/to: the day the item arrived (inclusive, UTC); decided from/to: the day an upstream
  model decided it (inclusive, UTC).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from labeling.models import GoldLabel, Policy

from ..audit import Actor, audit_record
from ..errors import Conflict, Invalid
from ..models import ContentItem, ModelDecision, ReviewTask, RoutingOutcome, SavedSearch, TaskReason, TaskStatus

PAGE_SIZE = 50
SAVED_SEARCHES_PER_USER = 50

# status value → (label people read, what it means)
STATUSES: dict[str, tuple[str, str]] = {
    "open_task": ("Open task", "a review task (not a honeypot check) is waiting for a reviewer"),
    "awaiting_adjudication": (
        "Awaiting adjudication",
        "a task is escalated to a policy lead, who has not decided it yet",
    ),
    "gold": ("Gold", "a gold label has been decided"),
    "auto_actioned": ("Auto-enforced", "a model decision enforced it automatically"),
    "auto_cleared": ("Auto-cleared", "a model decision cleared it automatically"),
}


# An open task waits for a judgement of its item; a honeypot measures a reviewer, not the item (and an
# item's use as one must not show outside the lead's item page).
OPEN_TASK = Q(status=TaskStatus.OPEN) & ~Q(reason=TaskReason.HONEYPOT)


@dataclass(frozen=True)
class Cursor:
    """A position in the (received time, id) order; `before` pages backwards from it."""

    created_at: datetime
    item_id: int
    before: bool = False


@dataclass(frozen=True)
class ItemFilters:
    external_id: str = ""
    source: str = ""
    text: str = ""
    policy: Policy | None = None
    label: tuple[Policy, str] | None = None
    status: str = ""
    received_from: date | None = None
    received_to: date | None = None
    decided_from: date | None = None
    decided_to: date | None = None


@dataclass
class ItemRow:
    item: ContentItem
    policies: list[Policy] = field(default_factory=list)
    gold: list[GoldLabel] = field(default_factory=list)  # current versions, policy and policy_version loaded
    status_keys: list[str] = field(default_factory=list)  # in STATUSES order

    @property
    def statuses(self) -> list[str]:
        return [STATUSES[key][0] for key in self.status_keys]


@dataclass(frozen=True)
class ItemPage:
    rows: list[ItemRow]
    next_cursor: str | None
    previous_cursor: str | None


def cursor_encode(cursor: Cursor) -> str:
    raw = f"{'b' if cursor.before else 'a'}|{cursor.created_at.isoformat()}|{cursor.item_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_decode(token: str) -> Cursor:
    """The cursor a page link carries; Invalid when it was not made by `cursor_encode`."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        direction, stamp, item_id = raw.split("|")
        created_at = datetime.fromisoformat(stamp)
        if direction not in ("a", "b") or created_at.tzinfo is None or not 0 < int(item_id) < 2**63:
            raise ValueError(direction)
        return Cursor(created_at=created_at, item_id=int(item_id), before=direction == "b")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise Invalid("This page link is damaged: start the search again from the first page.") from None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _through(day: date) -> Q:
    """`created_at` on or before `day` (UTC), as a bound the received-time index can use."""
    if day >= date.max:
        return Q()
    return Q(created_at__lt=_day_start(day + timedelta(days=1)))


def item_search_queryset(*, filters: ItemFilters) -> QuerySet[ContentItem]:
    """The items matching `filters`, unordered. Each condition on another table is an EXISTS
    probe by item id (the planner may also start from the smaller side)."""
    items = ContentItem.objects.all()
    if filters.external_id:
        items = items.filter(external_id=filters.external_id)
    if filters.source:
        items = items.filter(source=filters.source)
    if filters.text:
        items = items.filter(text__icontains=filters.text)
    if filters.received_from:
        items = items.filter(created_at__gte=_day_start(filters.received_from))
    if filters.received_to:
        items = items.filter(_through(filters.received_to))
    decisions = ModelDecision.objects.filter(item=OuterRef("pk"))
    if filters.policy is not None:
        decisions = decisions.filter(policy=filters.policy)
    if filters.decided_from or filters.decided_to:
        decided = decisions
        if filters.decided_from:
            decided = decided.filter(decided_at__gte=_day_start(filters.decided_from))
        if filters.decided_to and filters.decided_to < date.max:
            decided = decided.filter(decided_at__lt=_day_start(filters.decided_to + timedelta(days=1)))
        items = items.filter(Exists(decided))
    if filters.policy is not None and not filters.status:
        # With a status, the status condition is already under the policy.
        policy = filters.policy
        # A task either came from a decision under the same policy or has none (imports, active
        # learning): the second probe reads the small `reviewtask_undecided` index only.
        undecided = ReviewTask.objects.filter(item=OuterRef("pk"), policy=policy, decision__isnull=True)
        items = items.filter(Exists(decisions) | Exists(undecided))
    if filters.label is not None:
        label_policy, value = filters.label
        current = GoldLabel.objects.filter(
            item=OuterRef("pk"), policy=label_policy, labels__contains=[value], superseded_by__isnull=True
        )
        items = items.filter(Exists(current))
    if filters.status:
        items = items.filter(_status_condition(filters.status, filters.policy))
    return items


def _status_condition(status: str, policy: Policy | None) -> Q | Exists:
    under = {} if policy is None else {"policy": policy}
    if status == "open_task":
        return Exists(ReviewTask.objects.filter(OPEN_TASK, item=OuterRef("pk"), **under))
    if status == "awaiting_adjudication":
        # A task is escalated exactly while its adjudication is open (labeling.services.consensus).
        return Exists(ReviewTask.objects.filter(item=OuterRef("pk"), status=TaskStatus.ESCALATED, **under))
    if status == "gold":
        return Exists(GoldLabel.objects.filter(item=OuterRef("pk"), **under))
    outcome = {"auto_actioned": RoutingOutcome.AUTO_ACTION, "auto_cleared": RoutingOutcome.AUTO_CLEAR}.get(status)
    if outcome is None:
        raise Invalid(f"Unknown status {status!r}.")
    return Exists(ModelDecision.objects.filter(item=OuterRef("pk"), routing_outcome=outcome, **under))


def item_search(*, filters: ItemFilters, cursor: Cursor | None = None, page_size: int | None = None) -> ItemPage:
    """One page of matching items (PAGE_SIZE by default), newest first, with the cursors of the
    pages before and after it; five queries.

    Reads one row more than the page to know whether another page follows.
    """
    page_size = page_size or PAGE_SIZE
    items = item_search_queryset(filters=filters)
    if cursor is None:
        ordered = items.order_by("-created_at", "-id")
    elif cursor.before:
        # (created_at, id) > cursor, written so the index bound is on created_at alone.
        ordered = items.filter(
            Q(created_at__gte=cursor.created_at) & (Q(created_at__gt=cursor.created_at) | Q(id__gt=cursor.item_id))
        ).order_by("created_at", "id")
    else:
        ordered = items.filter(
            Q(created_at__lte=cursor.created_at) & (Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.item_id))
        ).order_by("-created_at", "-id")
    fetched = list(ordered.defer("embedding", "context", "media_urls")[: page_size + 1])
    more = len(fetched) > page_size
    fetched = fetched[:page_size]
    if cursor is not None and cursor.before:
        fetched.reverse()
    has_next = more if cursor is None or not cursor.before else True
    has_previous = cursor is not None and (more if cursor.before else True)
    rows = _annotate_rows(fetched)
    return ItemPage(
        rows=rows,
        next_cursor=cursor_encode(Cursor(fetched[-1].created_at, fetched[-1].pk)) if has_next and fetched else None,
        previous_cursor=(
            cursor_encode(Cursor(fetched[0].created_at, fetched[0].pk, before=True))
            if has_previous and fetched
            else None
        ),
    )


def _annotate_rows(items: list[ContentItem]) -> list[ItemRow]:
    """Each item's policies, current gold labels and statuses: four queries."""
    rows = {item.pk: ItemRow(item=item) for item in items}
    if not rows:
        return []
    ids = list(rows)
    all_policies = Policy.objects.in_bulk()
    statuses: dict[int, set[str]] = {pk: set() for pk in ids}
    policies: dict[int, set[int]] = {pk: set() for pk in ids}
    for item_id, policy_id, outcome in ModelDecision.objects.filter(item_id__in=ids).values_list(
        "item_id", "policy_id", "routing_outcome"
    ):
        policies[item_id].add(policy_id)
        if outcome == RoutingOutcome.AUTO_ACTION:
            statuses[item_id].add("auto_actioned")
        elif outcome == RoutingOutcome.AUTO_CLEAR:
            statuses[item_id].add("auto_cleared")
    waiting = ReviewTask.objects.filter(Q(item_id__in=ids) & (OPEN_TASK | Q(status=TaskStatus.ESCALATED)))
    for item_id, policy_id, status in waiting.values_list("item_id", "policy_id", "status"):
        policies[item_id].add(policy_id)
        statuses[item_id].add("open_task" if status == TaskStatus.OPEN else "awaiting_adjudication")
    gold = GoldLabel.objects.filter(item_id__in=ids, superseded_by__isnull=True).select_related("policy_version")
    for label in gold.order_by("policy_id"):
        label.policy = all_policies[label.policy_id]
        policies[label.item_id].add(label.policy_id)
        statuses[label.item_id].add("gold")
        rows[label.item_id].gold.append(label)
    for pk, row in rows.items():
        row.policies = sorted((all_policies[policy_id] for policy_id in policies[pk]), key=lambda p: p.name)
        row.status_keys = [key for key in STATUSES if key in statuses[pk]]
    return list(rows.values())


def saved_search_create(*, user: User, name: str, query: str) -> SavedSearch:
    """Save `query` (a search page query string) under `name` for `user`; audited.

    Conflict when the user already has a search of that name or has too many."""
    with transaction.atomic():
        if SavedSearch.objects.filter(user=user).count() >= SAVED_SEARCHES_PER_USER:
            raise Conflict(f"You already have {SAVED_SEARCHES_PER_USER} saved searches: delete one first.")
        try:
            with transaction.atomic():
                saved = SavedSearch.objects.create(user=user, name=name, query=query)
        except IntegrityError:
            raise Conflict(f"You already have a saved search named “{name}”.") from None
        audit_record(
            actor=Actor.of(user),
            action="saved_search.create",
            object_type="saved_search",
            object_id=saved.pk,
            after={"name": name, "query": query},
        )
    return saved


def saved_search_delete(*, user: User, saved_search_id: int) -> None:
    """Delete one of `user`'s own saved searches; audited. Another user's is reported as missing."""
    with transaction.atomic():
        saved = SavedSearch.objects.select_for_update().filter(pk=saved_search_id, user=user).first()
        if saved is None:
            raise Invalid("No such saved search.")
        audit_record(
            actor=Actor.of(user),
            action="saved_search.delete",
            object_type="saved_search",
            object_id=saved.pk,
            before={"name": saved.name, "query": saved.query},
        )
        saved.delete()
