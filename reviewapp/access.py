"""Who may see and do what. Fetch-and-check helpers named access_*, used by pages and APIs alike."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse

from .models import Queue, ReviewTask

REVIEWER, POLICY_LEAD, ADMIN = "reviewer", "policy_lead", "admin"


def _role_groups(user: User) -> frozenset[str]:
    """The user's role groups, read once per request's user object (navigation asks on every page)."""
    cached = getattr(user, "_reviewapp_role_groups", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=[POLICY_LEAD, ADMIN]).values_list("name", flat=True))
        user._reviewapp_role_groups = cached  # type: ignore[attr-defined]
    return cached


def is_lead(user: User | AnonymousUser) -> bool:
    """Policy leads and admins see every queue and the lead-only views."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or bool(_role_groups(user))


def is_admin(user: User | AnonymousUser) -> bool:
    """Superusers and members of the admin group: they manage API tokens."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or ADMIN in _role_groups(user)


def visible_queues(user: User) -> QuerySet[Queue]:
    queues = Queue.objects.filter(is_active=True)
    return queues if is_lead(user) else queues.filter(members=user)


def access_queue(user: User, queue_id: int) -> Queue:
    """The queue if the user may work it; 404 otherwise, so queue ids do not leak."""
    # The queue's LLM pre-label settings come in the same statement: the workspace asks for them.
    queue = visible_queues(user).filter(pk=queue_id).select_related("prelabels__reviewer").first()
    if queue is None:
        raise Http404("No such queue.")
    return queue


def access_task(user: User, task_id: int) -> ReviewTask:
    """A task in a queue the user may work (with item, policy and queue loaded); 404 otherwise."""
    task = (
        ReviewTask.objects.select_related("item", "policy", "queue__prelabels__reviewer", "decision")
        .filter(pk=task_id, queue__in=visible_queues(user))
        .first()
    )
    if task is None:
        raise Http404("No such task.")
    return task


def check_lead(user: User) -> None:
    if not is_lead(user):
        raise PermissionDenied("Policy leads only.")


def lead_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """View decorator: signed in and a policy lead (or admin); reviewers get 403."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        check_lead(request.user)
        return view(request, *args, **kwargs)

    return wrapped


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """View decorator: signed in and an admin; everyone else signed in gets 403."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not is_admin(request.user):
            raise PermissionDenied("Admins only.")
        return view(request, *args, **kwargs)

    return wrapped
