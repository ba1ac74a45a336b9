"""Comments on an item, between the reviewers who worked on it and policy leads; @mentions notify.

Who may read and write an item's thread (`item_visible_to`): leads and admins, and a reviewer
who answered the item (any answer, even one withdrawn), holds a live lease on one of its open
tasks, or has an open assignment on one. A mention is `@username`; it notifies that person in-app
only if they may read the thread (anyone else's name stays plain text), never the author. The
body is untrusted text: stored as typed, escaped wherever it is shown.
"""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Now
from django.urls import reverse

from labeling.models import Annotation

from ..access import is_lead
from ..audit import Actor, audit_record
from ..models import ContentItem, ItemComment, ReviewTask, TaskAssignment
from .notifications import notify

MAX_BODY = 5000
MAX_MENTIONS = 20
# Django's username characters (letters, digits and @.+-_); a trailing full stop ends a sentence.
MENTION = re.compile(r"(?<![\w@.+-])@([\w.@+-]+)")


def item_visible_to(*, user: User, item_id: int) -> bool:
    """Whether `user` may read the item's content and comment thread (see the module)."""
    if not user.is_authenticated:
        return False
    if is_lead(user):
        return True
    return (
        Annotation.objects.filter(item_id=item_id, reviewer=user).exists()
        or ReviewTask.objects.filter(
            item_id=item_id, status="open", leased_by=user, lease_expires_at__gt=Now()
        ).exists()
        or TaskAssignment.objects.filter(
            task__item_id=item_id, reviewer=user, fulfilled_at__isnull=True, cancelled_at__isnull=True
        ).exists()
    )


def _readers(item_id: int, usernames: list[str]) -> list[User]:
    """The named active users who may read the item's thread, by username."""
    if not usernames:
        return []
    lead = Q(is_superuser=True) | Q(groups__name__in=["policy_lead", "admin"])
    worked = Exists(Annotation.objects.filter(item_id=item_id, reviewer=OuterRef("pk")))
    holds = Exists(
        ReviewTask.objects.filter(item_id=item_id, status="open", leased_by=OuterRef("pk"), lease_expires_at__gt=Now())
    )
    assigned = Exists(
        TaskAssignment.objects.filter(
            task__item_id=item_id, reviewer=OuterRef("pk"), fulfilled_at__isnull=True, cancelled_at__isnull=True
        )
    )
    return list(
        User.objects.filter(username__in=usernames, is_active=True)
        .filter(lead | worked | holds | assigned)
        .distinct()
        .order_by("username")
    )


def mentioned_usernames(body: str) -> list[str]:
    """The distinct @usernames in `body`, in order (a full stop after a name ends the sentence)."""
    names = (match.rstrip(".") for match in MENTION.findall(body))
    return list(dict.fromkeys(name for name in names if name))[:MAX_MENTIONS]


def item_comment_create(*, item_id: int, author: User, body: str) -> ItemComment:
    """Post a comment on the item's thread and notify the people it mentions who may read it.

    Raises ValidationError for an empty or too long body, PermissionDenied when the author may
    not read the thread, ContentItem.DoesNotExist for an unknown item. Audited (`comment.created`).
    """
    body = body.strip()
    if not body:
        raise ValidationError("Write a comment first.")
    if len(body) > MAX_BODY:
        raise ValidationError(f"A comment is at most {MAX_BODY} characters; this one has {len(body)}.")
    item = ContentItem.objects.only("pk", "external_id").get(pk=item_id)
    if not item_visible_to(user=author, item_id=item_id):
        raise PermissionDenied("You can comment only on items you worked on.")
    mentioned = [user for user in _readers(item_id, mentioned_usernames(body)) if user.pk != author.pk]
    with transaction.atomic():
        comment = ItemComment.objects.create(item=item, author=author, body=body, mentions=[u.pk for u in mentioned])
        audit_record(
            actor=Actor.of(author),
            action="comment.created",
            object_type="item_comment",
            object_id=comment.pk,
            item_id=item.pk,
            after={"mentions": comment.mentions, "length": len(body)},
        )
        if mentioned:
            notify(
                users=mentioned,
                kind="mention",
                text=f"{author.get_username()} mentioned you on item {item.external_id}: {body}",
                url=reverse("item-comments", args=[item.pk]) + f"#comment-{comment.pk}",
            )
    return comment


def item_comments(*, item_id: int) -> list[ItemComment]:
    """The item's thread, oldest first, with authors."""
    return list(ItemComment.objects.filter(item_id=item_id).select_related("author").order_by("created_at", "pk"))
