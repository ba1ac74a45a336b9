"""Feedback to reviewers: their overturned answers (`/outcomes/`), in-app notifications
(`/notifications/`), and the comment thread of an item (`/items/<id>/comments/`).

Every signed-in person has outcomes and notifications of their own. An item's thread is open to
leads and to the reviewers who worked on the item (reviewapp.services.comments.item_visible_to);
leads also see it at the end of the item page. Plain forms that redirect; htmx swaps partials.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeling.services.outcomes import outcomes_for

from .access import is_lead
from .models import ContentItem, Notification
from .projection import item_projection
from .services.comments import item_comment_create, item_visible_to
from .services.notifications import notifications_mark_read, notifications_unread_count

NOTIFICATIONS_SHOWN = 100


@require_GET
@login_required
def outcomes_page(request: HttpRequest) -> HttpResponse:
    return render(request, "reviewapp/outcomes.html", {"outcomes": outcomes_for(reviewer=request.user)})


def _notifications_context(request: HttpRequest) -> dict[str, object]:
    notifications = list(
        Notification.objects.filter(user=request.user).order_by("-created_at", "-pk")[:NOTIFICATIONS_SHOWN]
    )
    return {"notifications": notifications, "unread": sum(n.read_at is None for n in notifications)}


@require_GET
@login_required
def notifications_page(request: HttpRequest) -> HttpResponse:
    return render(request, "reviewapp/notifications.html", _notifications_context(request))


@require_POST
@login_required
def notifications_read(request: HttpRequest) -> HttpResponse:
    """Mark read: the one notification posted as `id`, else all of the person's unread ones."""
    raw = request.POST.get("id", "").strip()
    if raw and not raw.isdigit():
        messages.error(request, "That notification id is not a number.")
        return redirect("notifications")
    marked = notifications_mark_read(user=request.user, ids=[int(raw)] if raw else None)
    if request.headers.get("HX-Request"):
        return render(request, "reviewapp/partials/_notification_list.html", _notifications_context(request))
    if not raw:
        messages.success(request, f"Marked {marked} notification{'s' if marked != 1 else ''} read.")
    return redirect("notifications")


@require_GET
@login_required
def notifications_unread(request: HttpRequest) -> HttpResponse:
    """The unread count for the navigation link (loaded by htmx, so pages pay nothing for it)."""
    count = notifications_unread_count(user=request.user)
    return render(request, "reviewapp/partials/_unread_count.html", {"unread_count": count})


def _access_item_thread(request: HttpRequest, item_id: int) -> ContentItem:
    """The item if the person may read its thread; 404 otherwise, so item ids do not leak."""
    item = ContentItem.objects.filter(pk=item_id).first()
    if item is None or not item_visible_to(user=request.user, item_id=item_id):
        raise Http404("No such item.")
    return item


def _thread_context(request: HttpRequest, item: ContentItem, error: str = "", body: str = "") -> dict[str, object]:
    return {
        "item": item,
        "thread_item": item,
        "view": item_projection(item=item),
        "comment_error": error,
        "comment_body": body,
        "comment_return": "comments",
        "item_page": is_lead(request.user),
    }


@require_GET
@login_required
def item_comments_page(request: HttpRequest, item_id: int) -> HttpResponse:
    item = _access_item_thread(request, item_id)
    return render(request, "reviewapp/item_comments.html", _thread_context(request, item))


@require_POST
@login_required
def item_comment_create_view(request: HttpRequest, item_id: int) -> HttpResponse:
    item = _access_item_thread(request, item_id)
    body = request.POST.get("body", "")
    back_to_item_page = request.POST.get("return") == "item" and is_lead(request.user)
    try:
        comment = item_comment_create(item_id=item.pk, author=request.user, body=body)
    except ValidationError as error:
        context = _thread_context(request, item, " ".join(error.messages), body)
        if request.headers.get("HX-Request"):
            context["comment_return"] = "item" if back_to_item_page else "comments"
            return render(request, "reviewapp/partials/_comments.html", context, status=400)
        return render(request, "reviewapp/item_comments.html", context, status=400)
    if request.headers.get("HX-Request"):
        context = _thread_context(request, item)
        context["comment_return"] = "item" if back_to_item_page else "comments"
        return render(request, "reviewapp/partials/_comments.html", context)
    target = reverse("item-detail" if back_to_item_page else "item-comments", args=[item.pk])
    return redirect(f"{target}#comment-{comment.pk}")
