"""People: a reviewer's onboarding set, and the lead's reviewer pages (standing, history, pause/resume).

The onboarding page is workspace-like (number keys choose, Enter submits: static/reviewapp/
workspace.js, since its form is `#annotate-form` in `#task-region`); each answer renders the
`region` partial for htmx and redirects back to the page for a plain form post. A GET changes
nothing: starting an attempt is a POST.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.models import GoldLabel, HoneypotCheck, OnboardingAttempt, PolicyVersion
from labeling.services.onboarding import (
    OnboardingRefused,
    onboarding_answer,
    onboarding_last_finished,
    onboarding_next,
    onboarding_open_attempt,
    onboarding_review,
    onboarding_start,
)

from .access import access_queue, lead_required
from .audit import Actor
from .content import render_guideline
from .errors import Refused
from .models import AuditEvent, Queue
from .projection import item_projection
from .services.standing import (
    queue_standing_for,
    queue_standing_pause,
    queue_standing_resume,
    reviewer_standings,
    reviewers_overview,
)

ONBOARDING = "reviewapp/onboarding.html"
RECENT = 50


class OnboardingAnswerForm(forms.Form):
    attempt = forms.IntegerField()
    gold = forms.IntegerField()
    labels = forms.MultipleChoiceField(choices=[], error_messages={"required": "Choose a label."})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Any value here; the service checks it against the policy version in force.
        self.fields["labels"].choices = [(v, v) for v in self.data.getlist("labels")] if self.data else []


class StandingChangeForm(forms.Form):
    queue = forms.ModelChoiceField(queryset=Queue.objects.all(), error_messages={"required": "Choose a queue."})
    reason = forms.CharField(
        max_length=2000, strip=True, error_messages={"required": "Give a reason: the reviewer and other leads read it."}
    )


# ---- the reviewer's onboarding set ----


@require_http_methods(["GET", "POST"])
@login_required
def onboarding_page(request: HttpRequest, queue_id: int) -> HttpResponse:
    """GET: the next item of the open attempt, the last attempt's result, or an offer to start.
    POST: start an attempt (or carry on with the open one)."""
    queue = access_queue(request.user, queue_id)
    if request.method == "GET":
        return _render_onboarding(request, queue)
    try:
        onboarding_start(queue=queue, reviewer=request.user)
    except OnboardingRefused as error:
        return _render_onboarding(request, queue, error=error.detail, status=409)
    if not request.htmx:
        return redirect("onboarding", queue_id=queue.pk)
    return _render_onboarding(request, queue)


@require_POST
@login_required
def onboarding_answer_view(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = access_queue(request.user, queue_id)
    form = OnboardingAnswerForm(request.POST)
    if not form.is_valid():
        return _render_onboarding(request, queue, error="Choose a label.", status=400)
    try:
        onboarding_answer(
            attempt_id=form.cleaned_data["attempt"],
            reviewer=request.user,
            gold_id=form.cleaned_data["gold"],
            labels=form.cleaned_data["labels"],
        )
    except OnboardingAttempt.DoesNotExist:
        raise Http404("No such onboarding attempt.") from None
    except ValidationError as error:
        return _render_onboarding(request, queue, error=" ".join(error.messages), status=400)
    except OnboardingRefused as error:
        return _render_onboarding(request, queue, error=error.detail, status=409)
    if not request.htmx:
        return redirect("onboarding", queue_id=queue.pk)
    return _render_onboarding(request, queue, notice="Saved.")


def _render_onboarding(
    request: HttpRequest, queue: Queue, *, notice: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    context = _onboarding_context(queue, request.user, notice=notice, error=error)
    template = ONBOARDING + "#region" if request.htmx else ONBOARDING
    # htmx swaps only 2xx responses: the refusal is shown in the region instead.
    return render(request, template, context, status=200 if request.htmx else status)


def _onboarding_context(queue: Queue, reviewer: Any, *, notice: str, error: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        "queue": queue,
        "standing": queue_standing_for(queue=queue, reviewer=reviewer),
        "notice": notice,
        "error": error,
    }
    attempt = onboarding_open_attempt(queue=queue, reviewer=reviewer)
    step = onboarding_next(attempt=attempt) if attempt else None
    if step is not None:
        context.update(
            step=step,
            view=item_projection(item=step.gold.item, heading=step.gold.policy.name),
            # Graphic media stay blurred: a reveal is counted on a task (reviewapp.services.wellness).
            revealed=not step.gold.item.is_graphic,
            version=step.version,
            label_keys=label_keys(step.version),
            guideline_html=render_guideline(step.version.guideline) if step.version else "",
        )
        return context
    last = onboarding_last_finished(queue=queue, reviewer=reviewer)
    if last is not None:
        context.update(last=last, review=onboarding_review(attempt=last))
    return context


def label_keys(version: PolicyVersion | None) -> list[tuple[str, dict]]:
    """Labels with their number key (1–9), in schema order, as the workspace shows them."""
    if version is None:
        return []
    return [(str(index + 1) if index < 9 else "", label) for index, label in enumerate(version.label_schema["labels"])]


# ---- the lead's reviewer pages ----


@require_GET
@lead_required
def reviewer_list(request: HttpRequest) -> HttpResponse:
    return render(request, "reviewapp/reviewer_list.html", {"rows": reviewers_overview()})


@require_GET
@lead_required
def reviewer_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    return _render_detail(request, _reviewer(user_id))


@require_POST
@lead_required
def reviewer_pause(request: HttpRequest, user_id: int) -> HttpResponse:
    return _standing_change(request, _reviewer(user_id), pause=True)


@require_POST
@lead_required
def reviewer_resume(request: HttpRequest, user_id: int) -> HttpResponse:
    return _standing_change(request, _reviewer(user_id), pause=False)


def _standing_change(request: HttpRequest, reviewer: User, *, pause: bool) -> HttpResponse:
    form = StandingChangeForm(request.POST)
    if form.is_valid():
        change = queue_standing_pause if pause else queue_standing_resume
        queue, reason = form.cleaned_data["queue"], form.cleaned_data["reason"]
        try:
            change(queue=queue, reviewer=reviewer, reason=reason, actor=Actor.of(request.user))
        except Refused as error:
            form.add_error(None, error.detail)
        else:
            notice = f"{reviewer.get_username()} {'paused' if pause else 'resumed'} in {queue.name}."
            if request.htmx:
                return _render_detail(request, reviewer, notice=notice)
            messages.success(request, notice)
            return redirect("reviewer-detail", user_id=reviewer.pk)
    errors = [str(message) for messages_ in form.errors.values() for message in messages_]
    # htmx swaps only 2xx responses: the errors are shown in the region instead.
    return _render_detail(request, reviewer, errors=errors, status=200 if request.htmx else 400)


def _reviewer(user_id: int) -> User:
    reviewer = User.objects.filter(pk=user_id).first()
    if reviewer is None:
        raise Http404("No such person.")
    return reviewer


def _render_detail(  # type: ignore[no-untyped-def]
    request: HttpRequest, reviewer: User, *, errors: list[str] | None = None, notice: str = "", status: int = 200
):
    annotations = list(
        reviewer.annotations.select_related("item", "policy_version", "task__queue").order_by("-created_at")[:RECENT]
    )
    gold = {
        (g.item_id, g.policy_id): g
        for g in GoldLabel.objects.filter(
            item_id__in={a.item_id for a in annotations}, superseded_by__isnull=True
        ).select_related("policy_version")
    }
    context = {
        "reviewer": reviewer,
        "standings": reviewer_standings(reviewer=reviewer),
        "errors": errors or [],
        "notice": notice,
        "annotations": [(a, gold.get((a.item_id, a.policy_id))) for a in annotations],
        "honeypots": HoneypotCheck.objects.filter(reviewer=reviewer, correct__isnull=False)
        .select_related("task__queue", "task__item")
        .order_by("-answered_at")[:RECENT],
        "attempts": OnboardingAttempt.objects.filter(reviewer=reviewer).select_related("queue").order_by("-started_at"),
        "events": _standing_events(reviewer),
    }
    template = "reviewapp/reviewer_detail.html" + ("#standings" if request.htmx else "")
    return render(request, template, context, status=status)


def _standing_events(reviewer: User) -> list[AuditEvent]:
    """The reviewer's pauses, resumptions and qualifications, newest first, each with its queue's slug."""
    events = list(
        AuditEvent.objects.filter(object_type="reviewer", object_id=str(reviewer.pk)).order_by("-occurred_at")[:RECENT]
    )
    queue_ids = {(e.after or {}).get("queue") for e in events}
    slugs = dict(Queue.objects.filter(pk__in=[q for q in queue_ids if q]).values_list("pk", "slug"))
    for event in events:
        event.queue_slug = slugs.get((event.after or {}).get("queue"), "")  # type: ignore[attr-defined]
        event.what = EVENT_NAMES.get(event.action, event.action)  # type: ignore[attr-defined]
    return events


EVENT_NAMES = {
    "standing.paused": "Paused",
    "standing.resumed": "Resumed by a lead",
    "standing.qualified": "Passed onboarding",
}
