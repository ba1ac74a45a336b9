"""Browser pages of the review workflow."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Min, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from .models import Queue, TaskStatus


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Queues the user can see, with their depth, oldest open item and SLA breaches."""
    queues = _visible_queues(request.user).annotate(
        open_count=Count("tasks", filter=Q(tasks__status=TaskStatus.OPEN)),
        oldest_open=Min("tasks__created_at", filter=Q(tasks__status=TaskStatus.OPEN)),
        breached=Count("tasks", filter=Q(tasks__status=TaskStatus.OPEN, tasks__due_at__lt=timezone.now())),
    )
    return render(request, "reviewapp/home.html", {"queues": queues, "now": timezone.now()})


def _visible_queues(user):  # type: ignore[no-untyped-def]
    queues = Queue.objects.filter(is_active=True)
    if user.is_superuser or user.groups.filter(name__in=["policy_lead", "admin"]).exists():
        return queues
    return queues.filter(members=user)
