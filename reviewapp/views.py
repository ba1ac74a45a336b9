"""Browser pages of the review workflow: the queue list and the reviewer workspace.

Every workspace action renders the `task` partial of `reviewapp/workspace.html` for htmx
requests (the next item appears without a page load); for plain form posts it claims the next
item and redirects to the queue page, which shows it, so the workspace also works without
JavaScript. Claiming is a POST only: a GET of the queue page shows the item the reviewer already
holds, never leases a new one (a link, prefetch or cross-site navigation must change nothing).

Workspace responses carry a `Server-Timing` header (`claim`, `submit`, `render`, in ms), so
browser dev tools and load tests see where a slow response spent its time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count, IntegerField, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.llm.services.suggestions import suggestion_accepted_record, suggestion_for
from labeling.models import Annotation
from labeling.services.annotations import SubmissionRejected, annotation_retract, annotation_submit
from labeling.services.policy_notices import policy_notice_take

from .access import access_queue, access_task, visible_queues
from .content import media_for, render_guideline
from .forms import AnnotationForm, EscalateForm, SkipForm
from .models import MediaExposure, Queue, ReviewTask, TaskStatus
from .projection import task_projection
from .services.assignments import task_assignment_notes
from .services.case_history import author_history_line
from .services.claims import ClaimError, task_claim_next, task_escalate, task_held, task_lease_renew, task_release
from .services.standing import queue_standing_for
from .services.wellness import RevealRefused, break_due, graphic_exposures_this_shift, media_reveal

WORKSPACE = "reviewapp/workspace.html"
NOTHING_TO_REVIEW = (
    "Nothing to review here right now: every open item is done, held by another reviewer, or already labelled by you."
)


@require_GET
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Queues the user can work, with depth, oldest open item, SLA breaches and their count today."""
    now = timezone.now()
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    mine_today = (
        Annotation.objects.filter(
            task__queue=OuterRef("pk"), reviewer=request.user, created_at__gte=day_start, retracted_at__isnull=True
        )
        .values("task__queue")
        .annotate(n=Count("pk"))
        .values("n")
    )
    queues = visible_queues(request.user).annotate(
        open_count=Count("tasks", filter=Q(tasks__status=TaskStatus.OPEN)),
        oldest_open=Min("tasks__created_at", filter=Q(tasks__status=TaskStatus.OPEN)),
        breached=Count("tasks", filter=Q(tasks__status=TaskStatus.OPEN, tasks__due_at__lt=now)),
        mine_today=Coalesce(Subquery(mine_today, output_field=IntegerField()), 0),
    )
    return render(request, "reviewapp/home.html", {"queues": queues, "now": now})


@require_http_methods(["GET", "POST"])
@login_required
def queue_work(request: HttpRequest, queue_id: int) -> HttpResponse:
    """GET: show the task the reviewer holds in the queue, or a button to claim one.
    POST: claim (or resume) the reviewer's next task; then show it (htmx) or redirect to the GET."""
    queue = access_queue(request.user, queue_id)
    if request.method == "POST":
        return _next(request, queue, notice="")
    with _timed(request, "resume"):
        task = task_held(reviewer=request.user, queue=queue)
    return _render_workspace(request, queue, task, start=True)


@require_POST
@login_required
def task_submit(request: HttpRequest, task_id: int) -> HttpResponse:
    task = access_task(request.user, task_id)
    form = AnnotationForm(request.POST)
    if not form.is_valid():
        return _render_workspace(request, task.queue, task, form=form)
    try:
        with _timed(request, "submit"):
            result = annotation_submit(task_id=task.pk, reviewer=request.user, **form.submission())
    except ValidationError as error:
        form.add_error(None, error)
        return _render_workspace(request, task.queue, task, form=form)
    except SubmissionRejected as error:
        return _next(request, task.queue, notice=str(error))
    if request.POST.get("suggestion_accepted") == "1":  # set by the accept key (workspace.js)
        suggestion_accepted_record(task=task, reviewer=request.user, labels=result.annotation.labels)
    return _next(request, task.queue, notice="Saved.", last_annotation=result.annotation)


@require_POST
@login_required
def task_skip(request: HttpRequest, task_id: int) -> HttpResponse:
    task = access_task(request.user, task_id)
    form = SkipForm(request.POST)
    if not form.is_valid():
        return _render_workspace(request, task.queue, task, notice="Choose why you are skipping.")
    task_release(task_id=task.pk, reviewer=request.user, reason=form.cleaned_data["reason"])
    return _next(request, task.queue, notice="Skipped.")


@require_POST
@login_required
def task_escalate_view(request: HttpRequest, task_id: int) -> HttpResponse:
    task = access_task(request.user, task_id)
    form = EscalateForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        task_escalate(task_id=task.pk, reviewer=request.user, note=note)
    except ClaimError as error:
        return _next(request, task.queue, notice=str(error))
    return _next(request, task.queue, notice="Escalated to a policy lead.")


@require_POST
@login_required
def annotation_undo(request: HttpRequest, annotation_id: int) -> HttpResponse:
    annotation = Annotation.objects.filter(pk=annotation_id, reviewer=request.user).first()
    if annotation is None:
        return _next(request, None, notice="Nothing to undo.")
    task = access_task(request.user, annotation.task_id)
    try:
        annotation_retract(annotation_id=annotation.pk, reviewer=request.user)
    except SubmissionRejected as error:
        return _next(request, task.queue, notice=str(error))
    task.refresh_from_db()
    return _render_workspace(request, task.queue, task, notice="Undone: label it again.", previous=annotation)


@require_POST
@login_required
def task_heartbeat(request: HttpRequest, task_id: int) -> HttpResponse:
    """Renew the lease while the page is open; tell the reviewer if it was lost."""
    task = access_task(request.user, task_id)
    try:
        task_lease_renew(task_id=task.pk, reviewer=request.user)
    except ClaimError as error:
        return render(request, "reviewapp/partials/_lease_lost.html", {"message": str(error), "queue": task.queue})
    return HttpResponse(status=204)


@require_POST
@login_required
def task_reveal_media(request: HttpRequest, task_id: int) -> HttpResponse:
    """Unblur an item's media on request, counting the exposure for wellness limits.

    Refused (409, nothing counted) unless the reviewer holds the task and its media can load.
    """
    task = access_task(request.user, task_id)
    try:
        exposures = media_reveal(task=task, reviewer=request.user)
    except RevealRefused as error:
        return _reveal_refused(request, task, str(error))
    context = {
        "task": task,
        "media": media_for(task.item.media_urls, task.item.modality),
        "revealed": True,
        "exposures": exposures,
        "break_due": break_due(exposures=exposures),
    }
    if not request.htmx:
        return redirect("queue-work", queue_id=task.queue_id)
    return render(request, "reviewapp/partials/_media.html", context)


def _reveal_refused(request: HttpRequest, task: ReviewTask, message: str) -> HttpResponse:
    """The media stay concealed with the reason beside them (htmx swaps only 2xx, hence 200 there);
    a plain form post gets the queue page with the reason, as a 409."""
    if not request.htmx:
        held = task_held(reviewer=request.user, queue=task.queue)
        response = _render_workspace(request, task.queue, held, notice=message, start=True)
        response.status_code = 409
        return response
    context = {
        "task": task,
        "media": media_for(task.item.media_urls, task.item.modality),
        "revealed": False,
        "reveal_refusal": message,
    }
    return render(request, "reviewapp/partials/_media.html", context)


def _next(request: HttpRequest, queue: Queue | None, *, notice: str, last_annotation: Annotation | None = None):  # type: ignore[no-untyped-def]
    """After a POST: claim the reviewer's next task and show it (htmx), or redirect to the queue page,
    which shows the task now held (the GET itself never claims)."""
    if queue is None:
        messages.info(request, notice)
        return redirect("home")
    with _timed(request, "claim"):
        claim = task_claim_next(reviewer=request.user, queue=queue)
    if not request.htmx:
        # A reviewer without live access is shown why on the queue page (onboarding, or the pause
        # reason), not told that the queue is empty.
        empty = claim is None and queue_standing_for(queue=queue, reviewer=request.user).live
        for text in (notice, NOTHING_TO_REVIEW if empty else ""):
            if text:
                messages.info(request, text)
        return _with_server_timing(request, redirect("queue-work", queue_id=queue.pk))
    return _render_workspace(
        request, queue, claim.task if claim else None, notice=notice, last_annotation=last_annotation
    )


def _render_workspace(
    request: HttpRequest,
    queue: Queue,
    task: ReviewTask | None,
    *,
    form: AnnotationForm | None = None,
    notice: str = "",
    last_annotation: Annotation | None = None,
    start: bool = False,
    previous: Annotation | None = None,
) -> HttpResponse:
    with _timed(request, "render"):
        context = _workspace_context(request, queue, task, form, notice, last_annotation)
        context["start"] = start  # a GET without a held task: offer to claim rather than "nothing to do"
        # After an undo, the answer just taken back is shown and pre-selected: undo is mostly for
        # a slip, so the reviewer corrects one field instead of answering again from scratch.
        context["previous"] = previous
        template = WORKSPACE + "#task" if request.htmx else WORKSPACE
        response = render(request, template, context)
    return _with_server_timing(request, response)


@contextmanager
def _timed(request: HttpRequest, phase: str) -> Iterator[None]:
    """Add the time spent in the block to `phase` of the request's Server-Timing."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timings = request.__dict__.setdefault("server_timing", {})
        timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - started


def _with_server_timing(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    timings = getattr(request, "server_timing", {})
    if timings:
        response["Server-Timing"] = ", ".join(f"{phase};dur={s * 1000:.1f}" for phase, s in timings.items())
    return response


def _workspace_context(
    request: HttpRequest,
    queue: Queue,
    task: ReviewTask | None,
    form: AnnotationForm | None,
    notice: str,
    last_annotation: Annotation | None,
) -> dict[str, Any]:
    exposures = graphic_exposures_this_shift(reviewer=request.user)
    context: dict[str, Any] = {
        "queue": queue,
        "task": task,
        "notice": notice,
        "last_annotation": last_annotation,
        "undo_seconds": settings.UNDO_WINDOW_SECONDS,
        "exposures": exposures,
        "break_due": break_due(exposures=exposures),
        "session": _session_counter(request.user, queue),
    }
    if task is None:
        context["standing"] = queue_standing_for(queue=queue, reviewer=request.user)
        return context
    version = task.policy.current_version()
    item = task.item
    revealed = item.is_graphic and MediaExposure.objects.filter(reviewer=request.user, item=item, queue=queue).exists()
    context.update(
        view=task_projection(task=task, version=version),
        version=version,
        guideline_html=_guideline_html(version.guideline) if version else "",
        revealed=revealed or not item.is_graphic,
        form=form or AnnotationForm(initial={"policy_version": version.pk if version else None}),
        skip_form=SkipForm(),
        lease_remaining=max(0, int((task.lease_expires_at - timezone.now()).total_seconds()))
        if task.lease_expires_at
        else 0,
        heartbeat_seconds=max(15, queue.lease_seconds // 3),
        label_keys=_label_keys(version),
        # Free on queues without LLM pre-labels (the settings came with the queue); see suggestion_for.
        suggestion=suggestion_for(task=task, reviewer=request.user),
        policy_notice=policy_notice_take(version=version, reviewer=request.user),
        assignment_notes=task_assignment_notes(task=task, reviewer=request.user),
        author_history=author_history_line(task=task),
        lease_deadline=task.lease_expires_at or timezone.now() + timedelta(seconds=queue.lease_seconds),
    )
    return context


def _session_counter(reviewer: Any, queue: Queue) -> dict[str, Any]:
    """Answers the reviewer gave in this queue since signing in, the queue's open tasks, and the
    time since signing in: read in one statement on every render (the page has no clock script)."""
    since = reviewer.last_login or timezone.now()
    done = (
        Annotation.objects.filter(
            task__queue=OuterRef("pk"), reviewer=reviewer, created_at__gte=since, retracted_at__isnull=True
        )
        .order_by()
        .values("reviewer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    remaining = (
        ReviewTask.objects.filter(queue=OuterRef("pk"), status=TaskStatus.OPEN)
        .order_by()
        .values("queue")
        .annotate(n=Count("pk"))
        .values("n")
    )
    counts = (
        Queue.objects.filter(pk=queue.pk)
        .values(
            done=Coalesce(Subquery(done, output_field=IntegerField()), 0),
            remaining=Coalesce(Subquery(remaining, output_field=IntegerField()), 0),
        )
        .get()
    )
    minutes = max(0, int((timezone.now() - since).total_seconds() // 60))
    elapsed = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"
    return {**counts, "since": since, "elapsed": elapsed}


@lru_cache(maxsize=64)
def _guideline_html(markdown: str) -> SafeString:
    """Rendered once per guideline text per process: every item of a policy shows the same one."""
    return render_guideline(markdown)


def _label_keys(version: Any) -> list[tuple[str, dict]]:
    """Labels with their number key (1–9), in schema order."""
    if version is None:
        return []
    return [(str(index + 1) if index < 9 else "", label) for index, label in enumerate(version.label_schema["labels"])]


@require_GET
@login_required
def item_audit_export(request: HttpRequest, item_id: int) -> HttpResponse:
    """Every audit event about one content item, oldest first, as JSON lines (leads only)."""
    from django.http import Http404, StreamingHttpResponse

    from .access import check_lead
    from .models import AuditEvent, ContentItem

    check_lead(request.user)
    events = AuditEvent.objects.filter(item_id=item_id).order_by("occurred_at", "id")
    # An empty 200 would read as "nothing happened to this item"; the trail outlives a deleted item.
    if not (ContentItem.objects.filter(pk=item_id).exists() or events.exists()):
        raise Http404("No content item has this id.")
    fields = (
        "id",
        "occurred_at",
        "actor_id",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "before",
        "after",
        "request_id",
    )

    def lines():  # type: ignore[no-untyped-def]
        for row in events.values_list(*fields).iterator(chunk_size=2000):
            record = dict(zip(fields, row, strict=True))
            record["occurred_at"] = record["occurred_at"].isoformat()
            yield json.dumps(record, sort_keys=True, cls=DjangoJSONEncoder) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="item-{item_id}-audit.jsonl"'
    return response
