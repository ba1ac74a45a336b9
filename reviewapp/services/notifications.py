"""In-app notifications: a mention, an overturned answer, a pause, a task sent back to a reviewer."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import User

from ..db import db_now
from ..models import Notification

MAX_TEXT = 500


def notify(*, users: Iterable[User | int], kind: str, text: str, url: str = "") -> list[Notification]:
    """Queue one unread notification per user (deduplicated). Call inside the transaction of the
    change it reports, so that a rolled-back change notifies nobody. `url` is a path in the app."""
    ids = dict.fromkeys(user if isinstance(user, int) else user.pk for user in users)
    text = text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"
    return Notification.objects.bulk_create(Notification(user_id=uid, kind=kind, text=text, url=url) for uid in ids)


def notifications_unread_count(*, user: User) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notifications_mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark the user's unread notifications read (only `ids`, when given); returns how many."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=db_now())
