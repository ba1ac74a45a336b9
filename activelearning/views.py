"""Lead pages: the model registry of a policy, starting a round and watching it, threshold approval.

Thin views: fetch with an access check (`lead_required`), call one service, render or redirect.
The round page polls its `progress` partial with htmx while the round is active; without
JavaScript, reloading the page shows the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from activelearning.strategies import STRATEGIES, strategy_title
from labeling.models import Policy
from reviewapp.access import lead_required
from reviewapp.audit import Actor
from reviewapp.errors import Refused
from reviewapp.models import Queue

from .drift_report import drift_context
from .label_error_report import label_error_run_context, label_error_runs
from .models import Encoder, LabelErrorRun, ModelVersion, RunTrigger, ThresholdProposal, TrainingRun
from .online_report import online_context
from .report import models_context, run_context
from .services.deployment import model_deploy, model_rollback
from .services.deployment_comparison import deployment_context
from .services.label_error_loop import label_error_suspects_send
from .services.online_metrics import DEFAULT_WEEKS, MAX_WEEKS, online_metrics_compute
from .services.rounds import (
    RoundAlreadyActive,
    default_encoder,
    round_gold_shortfall,
    training_run_fail,
    training_run_start,
)
from .services.thresholds import ProposalClosed, threshold_proposal_approve, threshold_proposal_reject

ROUND_FIELDS = ("encoder", "strategy", "budget", "balanced", "queue_id")
# Triggers a lead may name on the round form: a drift alert proposes a round, a person starts it.
FORM_TRIGGERS = (RunTrigger.MANUAL, RunTrigger.DRIFT)


def _models_url(policy_key: str) -> str:
    return f"{reverse('al-models')}?{urlencode({'policy': policy_key})}"


@require_GET
@lead_required
def models_page(request: HttpRequest) -> HttpResponse:
    """Versions, metrics and charts, promotion decisions and threshold proposals of one policy."""
    policies = list(Policy.objects.filter(is_active=True))
    policy = next((p for p in policies if p.key == request.GET.get("policy")), policies[0] if policies else None)
    context = {
        "policies": policies,
        "policy": policy,
        "encoders": Encoder.choices,
        "default_encoder": default_encoder(),
        "strategies": [(name, strategy_title(name)) for name in STRATEGIES],
        "queues": Queue.objects.filter(is_active=True),
        **models_context(policy, request.GET.get("version")),
        **deployment_context(policy),
        **drift_context(policy),
        "label_error_runs": label_error_runs(policy)[:5] if policy else [],
    }
    return render(request, "activelearning/models.html", context)


@require_GET
@lead_required
def online_page(request: HttpRequest, policy_key: str) -> HttpResponse:
    """Online figures of a policy's models per ISO week: audit-sample precision and clear misses,
    appeal overturns, calibration of live scores; and drift of live decisions from the champion's
    training items."""
    policy = get_object_or_404(Policy, key=policy_key)
    weeks = request.GET.get("weeks", str(DEFAULT_WEEKS))
    if not weeks.isdigit() or not 1 <= int(weeks) <= MAX_WEEKS:
        return HttpResponseBadRequest(f"weeks must be a whole number from 1 to {MAX_WEEKS}", content_type="text/plain")
    metrics = online_metrics_compute(policy=policy, weeks=int(weeks))
    context = {"policy": policy, "weeks": int(weeks), **online_context(metrics), **drift_context(policy)}
    return render(request, "activelearning/online.html", context)


@require_GET
@lead_required
def run_page(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun.objects.select_related("policy"), pk=run_id)
    template = "activelearning/run.html" + ("#progress" if request.headers.get("HX-Request") else "")
    return render(request, template, run_context(run))


@require_POST
@lead_required
def round_start(request: HttpRequest) -> HttpResponse:
    policy = get_object_or_404(Policy, key=request.POST.get("policy", ""), is_active=True)
    params = {name: request.POST[name] for name in ROUND_FIELDS if request.POST.get(name)}
    trigger = request.POST.get("trigger") or RunTrigger.MANUAL
    if trigger not in FORM_TRIGGERS:
        return HttpResponseBadRequest(f"trigger must be one of {', '.join(FORM_TRIGGERS)}")
    shortfall = round_gold_shortfall(policy=policy)
    if shortfall is not None:
        messages.error(request, f"Round not started: {shortfall}.")
        return redirect(_models_url(policy.key))
    try:
        run = training_run_start(
            policy=policy,
            actor=Actor.of(request.user),
            user=cast(User, request.user),
            params=params,
            trigger=trigger,
        )
    except RoundAlreadyActive as active:
        messages.warning(request, f"{policy.name} already has a round in progress; here it is.")
        return redirect("al-run", run_id=active.run.pk)
    except ValidationError as error:
        messages.error(
            request, "Round not started: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
        )
        return redirect(_models_url(policy.key))
    messages.success(request, f"Round {run.pk} queued for {policy.name}.")
    return redirect("al-run", run_id=run.pk)


@require_POST
@lead_required
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    who = request.user.get_username()
    if training_run_fail(run_id=run.pk, error=f"cancelled by {who}", actor=Actor.of(request.user)):
        messages.success(request, "Round cancelled.")
    else:
        messages.info(request, "The round had already finished.")
    return redirect("al-run", run_id=run.pk)


@require_POST
@lead_required
def proposal_approve(request: HttpRequest, proposal_id: int) -> HttpResponse:
    """Approve a threshold proposal: the routing rule of the model changes now."""
    return _proposal_decide(request, proposal_id, threshold_proposal_approve, "Routing thresholds updated.")


@require_POST
@lead_required
def proposal_reject(request: HttpRequest, proposal_id: int) -> HttpResponse:
    return _proposal_decide(request, proposal_id, threshold_proposal_reject, "Proposal rejected.")


def _proposal_decide(request: HttpRequest, proposal_id: int, decide: Callable[..., object], done: str) -> HttpResponse:
    proposal = get_object_or_404(ThresholdProposal.objects.select_related("policy"), pk=proposal_id)
    try:
        decide(proposal_id=proposal.pk, lead=cast(User, request.user), note=request.POST.get("note", "")[:2000])
    except (ProposalClosed, ValidationError) as error:
        messages.error(request, " ".join(getattr(error, "messages", [str(error)])))
    else:
        messages.success(request, done)
    return redirect(_models_url(proposal.policy.key))


@require_POST
@lead_required
def version_deploy(request: HttpRequest, model_id: int) -> HttpResponse:
    """Switch a version to shadow (for the chosen number of days) or live, once the lead confirmed."""
    version = get_object_or_404(ModelVersion.objects.select_related("policy"), pk=model_id)
    mode = request.POST.get("mode", "")
    return _switch(
        request,
        version.policy.key,
        lambda: model_deploy(
            version_id=version.pk, mode=mode, actor=Actor.of(request.user), shadow_days=_days(request)
        ),
        f"{version.model_name}@{version.version_label} is now {mode}.",
    )


@require_POST
@lead_required
def policy_rollback(request: HttpRequest, policy_key: str) -> HttpResponse:
    """Make the previous live version of the policy live again, once the lead confirmed."""
    policy = get_object_or_404(Policy, key=policy_key)
    done = "Rolled back: the previous live version is live again."
    return _switch(request, policy.key, lambda: model_rollback(policy_id=policy.pk, actor=Actor.of(request.user)), done)


def _days(request: HttpRequest) -> int | None:
    raw = request.POST.get("shadow_days", "").strip()
    return int(raw) if raw.isdigit() else (None if not raw else -1)  # -1: refused by the service


def _switch(request: HttpRequest, policy_key: str, switch: Callable[[], object], done: str) -> HttpResponse:
    if request.POST.get("confirm") != "yes":
        messages.error(request, "Nothing changed: tick the confirmation box to switch what routes traffic.")
    else:
        try:
            switch()
        except Refused as refused:
            messages.error(request, f"Nothing changed: {refused.detail}")
        else:
            messages.success(request, done)
    return redirect(_models_url(policy_key))


@require_GET
@lead_required
def label_error_runs_page(request: HttpRequest) -> HttpResponse:
    """A policy's out-of-fold label-error checks, newest first (the first active policy unless one is named)."""
    policies = Policy.objects.filter(is_active=True)
    key = request.GET.get("policy")
    policy = get_object_or_404(policies, key=key) if key else policies.first()
    runs = label_error_runs(policy)[:50] if policy else []
    return render(request, "activelearning/label_error_runs.html", {"policy": policy, "runs": runs})


@require_GET
@lead_required
def label_error_run_page(request: HttpRequest, label_error_run_id: int) -> HttpResponse:
    """One check's suspects, ranked, with the evidence for each and a form to send them to re-review."""
    run = get_object_or_404(LabelErrorRun.objects.select_related("policy", "training_run"), pk=label_error_run_id)
    return render(request, "activelearning/label_error_run.html", label_error_run_context(run))


@require_POST
@lead_required
def label_error_send(request: HttpRequest, label_error_run_id: int) -> HttpResponse:
    """Send the chosen suspects to re-review in the chosen queue; repeats open nothing twice."""
    run = get_object_or_404(LabelErrorRun, pk=label_error_run_id)
    queue_id = _int_or_none(request.POST.get("queue_id"))
    queue = Queue.objects.filter(pk=queue_id).first() if queue_id is not None else None
    gold_ids = [_int_or_none(v) for v in request.POST.getlist("gold")]
    if queue is None or None in gold_ids:
        return HttpResponseBadRequest("Choose a queue (queue_id) and suspects by gold id (gold).")
    try:
        sent = label_error_suspects_send(
            run_id=run.pk, gold_ids=cast(list[int], gold_ids), queue=queue, actor=Actor.of(request.user)
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("al-label-error-run", label_error_run_id=run.pk)
    skipped = [f"{len(sent.already_queued)} already sent"] if sent.already_queued else []
    skipped += [f"{len(sent.superseded)} corrected since"] if sent.superseded else []
    note = f" ({'; '.join(skipped)})" if skipped else ""
    messages.success(request, f"{len(sent.task_ids)} sent to re-review in {queue.name}{note}.")
    return redirect("al-label-error-run", label_error_run_id=run.pk)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value or "")
    except ValueError:
        return None
