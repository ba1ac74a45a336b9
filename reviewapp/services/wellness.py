"""Reviewer wellness: graphic media exposure, counted when a reviewer chooses to reveal it."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.functions import Now

from ..audit import Actor, audit_record
from ..content import media_for
from ..models import MediaExposure, Queue, ReviewTask, TaskStatus


class RevealRefused(Exception):
    """Nothing was revealed and no exposure was counted; the message says why."""


def media_reveal(*, task: ReviewTask, reviewer: User) -> int:
    """Record that the reviewer revealed the task's graphic media; return their shift count.

    Only for the reviewer holding the task's live lease, and only when the item has concealed
    media that the page can actually load (an allowlisted https host): an exposure that never
    happened would push the reviewer towards the daily cap and a break for nothing, and one
    recorded on another reviewer's task would be nobody's. Raises RevealRefused otherwise.
    Idempotent per (reviewer, item, queue): revealing the same item twice counts once.
    """
    item = task.item
    if not item.is_graphic or not any(m.allowed for m in media_for(item.media_urls, item.modality)):
        raise RevealRefused("This item has no media that can be shown here, so nothing was revealed or counted.")
    with transaction.atomic():
        holds_lease = ReviewTask.objects.filter(
            pk=task.pk, status=TaskStatus.OPEN, leased_by=reviewer, lease_expires_at__gt=Now()
        ).exists()
        if not holds_lease:
            raise RevealRefused("You do not hold this item (your claim expired or it is with another reviewer).")
        _, created = MediaExposure.objects.get_or_create(reviewer=reviewer, item=task.item, queue=task.queue)
        if created:
            audit_record(
                actor=Actor.of(reviewer),
                action="media.revealed",
                object_type="task",
                object_id=task.pk,
                item_id=task.item_id,
            )
    return graphic_exposures_this_shift(reviewer=reviewer)


def graphic_exposures_this_shift(*, reviewer: User) -> int:
    shift = timedelta(hours=settings.REVIEWER_SHIFT_HOURS)
    return MediaExposure.objects.filter(reviewer=reviewer, revealed_at__gt=Now() - shift).count()


def graphic_exposures_today(*, reviewer: User, queue: Queue) -> int:
    """Reveals in this queue during the last 24 hours (a rolling day, so no time-zone edge)."""
    return MediaExposure.objects.filter(
        reviewer=reviewer, queue=queue, revealed_at__gt=Now() - timedelta(days=1)
    ).count()


def break_due(*, exposures: int) -> bool:
    """Prompt a break every REVIEWER_BREAK_AFTER_GRAPHIC graphic items."""
    every = settings.REVIEWER_BREAK_AFTER_GRAPHIC
    return exposures > 0 and exposures % every == 0
