"""The lead-only Label Studio page (plain forms, no script) and the webhook endpoint."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from reviewapp.access import check_lead
from reviewapp.audit import Actor

from .client import WEBHOOK_SECRET_HEADER, LabelStudioError
from .forms import ConnectionForm, SyncProjectForm
from .models import Connection, ImportOutcome, SyncRun
from .services import connection_create, connection_test, webhook_accept
from .tasks import pull_connection, push_tasks, sync_project

SYNC_LOG_ROWS = 50
MAX_WEBHOOK_BODY = 1024 * 1024


@require_GET
@login_required
def connections(request: HttpRequest) -> HttpResponse:
    check_lead(request.user)  # type: ignore[arg-type]  # login_required: a User
    return render(request, "labelstudio/connections.html", _page_context())


def _page_context(form: ConnectionForm | None = None) -> dict:
    rows = Connection.objects.select_related("policy", "queue").annotate(
        pushed=Count("pushed_tasks", filter=Q(pushed_tasks__ls_task_id__isnull=False), distinct=True),
        imported=Count(
            "projects__pulled_annotations",
            filter=Q(projects__pulled_annotations__outcome=ImportOutcome.IMPORTED),
            distinct=True,
        ),
        waiting=Count(
            "projects__pulled_annotations",
            filter=~Q(projects__pulled_annotations__outcome=ImportOutcome.IMPORTED),
            distinct=True,
        ),
    )
    log = SyncRun.objects.select_related("connection")[:SYNC_LOG_ROWS]
    return {"connections": rows, "sync_log": log, "form": form or ConnectionForm()}


@require_POST
@login_required
def connection_new(request: HttpRequest) -> HttpResponse:
    check_lead(request.user)  # type: ignore[arg-type]  # login_required: a User
    form = ConnectionForm(request.POST)
    if not form.is_valid():
        return render(request, "labelstudio/connections.html", _page_context(form), status=400)
    try:
        connection = connection_create(actor=Actor.of(request.user), **form.cleaned_data)
    except ValidationError as error:
        form.add_error(None, error)
        return render(request, "labelstudio/connections.html", _page_context(form), status=400)
    messages.success(request, f"Connection {connection.name} saved. Test it, then push a queue.")
    return redirect("labelstudio-connections")


@require_POST
@login_required
def connection_test_view(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Synchronous on purpose: a lead waits for the answer (bounded by the client timeout)."""
    connection = _access_connection(request, connection_id)
    try:
        run = connection_test(connection_id=connection.pk, triggered_by=request.user.get_username())
    except LabelStudioError as error:
        messages.error(request, f"{connection.name}: {error}")
    else:
        messages.success(request, f"{connection.name}: connected as {run.counts.get('user') or 'the token user'}.")
    return redirect("labelstudio-connections")


@require_POST
@login_required
def sync_project_view(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = _access_connection(request, connection_id)
    form = SyncProjectForm(request.POST)
    recreate = form.is_valid() and form.cleaned_data["recreate"]
    who = request.user.get_username()
    transaction.on_commit(lambda: sync_project.delay(connection.pk, recreate, who))
    messages.success(request, f"{connection.name}: project sync queued; see the sync log.")
    return redirect("labelstudio-connections")


@require_POST
@login_required
def push_view(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = _access_connection(request, connection_id)
    if connection.queue_id is None:
        messages.error(request, f"{connection.name} has no queue to push; set one in the admin.")
        return redirect("labelstudio-connections")
    who = request.user.get_username()
    transaction.on_commit(lambda: push_tasks.delay(connection.pk, None, who))
    messages.success(request, f"{connection.name}: push of {connection.queue} queued; see the sync log.")
    return redirect("labelstudio-connections")


@require_POST
@login_required
def pull_view(request: HttpRequest, connection_id: int) -> HttpResponse:
    connection = _access_connection(request, connection_id)
    who = request.user.get_username()
    transaction.on_commit(lambda: pull_connection.delay(connection.pk, who))
    messages.success(request, f"{connection.name}: pull queued; see the sync log.")
    return redirect("labelstudio-connections")


def _access_connection(request: HttpRequest, connection_id: int) -> Connection:
    check_lead(request.user)  # type: ignore[arg-type]  # login_required: a User
    return get_object_or_404(Connection, pk=connection_id)


@csrf_exempt  # called by Label Studio, authenticated by the shared secret header instead
@require_POST
def webhook(request: HttpRequest, connection_id: int) -> HttpResponse:
    """Label Studio webhook: check the secret, enqueue a pull for annotation events, answer fast."""
    if len(request.body) > MAX_WEBHOOK_BODY:
        return JsonResponse({"detail": "Body too large."}, status=413)
    try:
        action: str | None = str(json.loads(request.body or b"{}").get("action", ""))
    except (ValueError, AttributeError):
        action = None
    secret = request.headers.get(WEBHOOK_SECRET_HEADER, "")
    try:  # authenticate before saying anything about the body
        queued = webhook_accept(connection_id=connection_id, secret=secret, action=action or "")
    except PermissionDenied:
        return JsonResponse({"detail": "Unknown connection or wrong secret."}, status=403)
    if action is None:
        return JsonResponse({"detail": "Expected a JSON object."}, status=400)
    return JsonResponse({"queued": queued}, status=202 if queued else 200)
