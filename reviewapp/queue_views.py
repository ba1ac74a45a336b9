"""Lead pages for queues and routing: the queue list, a queue's settings and members, and routing
rules with the estimate of a change's effect shown before it is saved.

Leads and admins only (`lead_required`); every change goes through `reviewapp.services.queues`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.models import Policy

from .access import lead_required
from .audit import Actor
from .models import AuditEvent, Queue, RoutingRule, TaskStatus
from .queue_forms import MemberForm, QueueForm, RoutingRuleForm, add_service_error
from .services.queues import (
    ESTIMATE_DAYS,
    QUEUE_FIELDS,
    check_routing_rule,
    queue_create,
    queue_member_add,
    queue_member_remove,
    queue_update,
    routing_rule_create,
    routing_rule_update,
    routing_volume_estimate,
)

RECENT_CHANGES = 20


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


@require_GET
@lead_required
def queue_list(request: HttpRequest) -> HttpResponse:
    queues = Queue.objects.annotate(
        member_count=Count("members", distinct=True),
        open_tasks=Count("tasks", filter=Q(tasks__status=TaskStatus.OPEN), distinct=True),
    ).order_by("-is_active", "slug")
    return render(request, "reviewapp/queue_list.html", {"queues": queues})


@require_http_methods(["GET", "POST"])
@lead_required
def queue_new(request: HttpRequest) -> HttpResponse:
    form = QueueForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            queue = queue_create(slug=form.cleaned_data["slug"], actor=Actor.of(request.user), **form.settings())
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Queue {queue.name} created. Add its members below.")
            return redirect("queue-detail", queue.pk)
    return render(request, "reviewapp/queue_form.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@lead_required
def queue_edit(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=queue_id)
    initial = {field: getattr(queue, field) for field in QUEUE_FIELDS}
    form = QueueForm(request.POST or None, initial=initial, queue=queue)
    if request.method == "POST" and form.is_valid():
        try:
            queue_update(queue_id=queue.pk, actor=Actor.of(request.user), **form.settings())
        except ValidationError as error:
            add_service_error(form, error)
        else:
            messages.success(request, f"Queue {queue.name} saved.")
            return redirect("queue-detail", queue.pk)
    context = {"form": form, "queue": queue}
    return render(request, "reviewapp/queue_form.html", context, status=400 if form.errors else 200)


def _detail_context(queue: Queue, member_form: MemberForm | None = None, notice: str = "") -> dict[str, Any]:
    rules = RoutingRule.objects.filter(Q(queue=queue) | Q(audit_queue=queue)).select_related("policy", "queue")
    changes = AuditEvent.objects.filter(object_type="queue", object_id=str(queue.pk)).order_by("-occurred_at", "-pk")
    return {
        "queue": queue,
        "members": queue.members.order_by("username"),
        "member_form": member_form or MemberForm(),
        "member_notice": notice,
        "rules": rules.order_by("policy__name", "model_name"),
        "changes": changes[:RECENT_CHANGES],
    }


@require_GET
@lead_required
def queue_detail(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=queue_id)
    return render(request, "reviewapp/queue_detail.html", _detail_context(queue))


def _member_change(request: HttpRequest, queue_id: int, *, add: bool) -> HttpResponse:
    queue = get_object_or_404(Queue, pk=queue_id)
    form = MemberForm(request.POST)
    notice = ""
    if form.is_valid():
        username = form.cleaned_data["username"]
        change = queue_member_add if add else queue_member_remove
        try:
            changed = change(queue_id=queue.pk, username=username, actor=Actor.of(request.user))
        except ValidationError as error:
            add_service_error(form, error)
        else:
            notice = _member_notice(username, add=add, changed=changed)
            form = MemberForm()
    if _is_htmx(request) or form.errors:
        context = _detail_context(queue, form, notice)
        template = "reviewapp/queue_detail.html" + ("#members" if _is_htmx(request) else "")
        return render(request, template, context, status=400 if form.errors else 200)
    messages.success(request, notice)
    return redirect("queue-detail", queue.pk)


def _member_notice(username: str, *, add: bool, changed: bool) -> str:
    if add:
        return f"{username} added." if changed else f"{username} is a member already."
    return f"{username} removed." if changed else f"{username} was not a member."


@require_POST
@lead_required
def queue_member_add_view(request: HttpRequest, queue_id: int) -> HttpResponse:
    return _member_change(request, queue_id, add=True)


@require_POST
@lead_required
def queue_member_remove_view(request: HttpRequest, queue_id: int) -> HttpResponse:
    return _member_change(request, queue_id, add=False)


@require_GET
@lead_required
def routing_rule_list(request: HttpRequest) -> HttpResponse:
    rules = RoutingRule.objects.select_related("policy", "queue", "audit_queue").order_by("policy__name", "model_name")
    return render(request, "reviewapp/routing_list.html", {"rules": rules, "days": ESTIMATE_DAYS})


def _rule_page(request: HttpRequest, form: RoutingRuleForm) -> HttpResponse:
    """Preview (the estimate of the posted values) or save. Saving values whose estimate was not
    the one shown shows their estimate first, so nobody saves a change without seeing its effect."""
    context: dict[str, Any] = {"form": form, "rule": form.rule, "days": ESTIMATE_DAYS}
    if request.method == "POST" and form.is_valid():
        try:
            check_routing_rule(form.rule_values())
            if request.POST.get("action") == "save" and form.was_previewed():
                return _rule_save(request, form)
        except ValidationError as error:
            add_service_error(form, error)
        else:
            policy, model_name = form.target()
            estimate = routing_volume_estimate(policy=policy, model_name=model_name, proposed=form.thresholds())
            context |= {"estimate": estimate, "fingerprint": form.fingerprint()}
            context["unconfirmed"] = request.POST.get("action") == "save"
    template = "reviewapp/routing_form.html" + ("#rule_form" if _is_htmx(request) else "")
    return render(request, template, context, status=400 if form.errors else 200)


def _rule_save(request: HttpRequest, form: RoutingRuleForm) -> HttpResponse:
    actor = Actor.of(request.user)
    if form.rule is None:
        policy, model_name = form.target()
        rule = routing_rule_create(policy=policy, model_name=model_name, actor=actor, **form.rule_values())
        messages.success(request, f"Routing rule for {policy.name} · {rule.model_name} created.")
    else:
        rule = routing_rule_update(rule_id=form.rule.pk, actor=actor, **form.rule_values())
        messages.success(request, f"Routing rule for {rule.policy.name} · {rule.model_name} saved.")
    return redirect("routing-rule-list")


@require_http_methods(["GET", "POST"])
@lead_required
def routing_rule_new(request: HttpRequest) -> HttpResponse:
    initial = {
        "policy": Policy.objects.filter(key=request.GET.get("policy", "")).first(),
        "queue": request.GET.get("queue"),
        "model_name": RoutingRule.ANY_MODEL,
    }
    return _rule_page(request, RoutingRuleForm(request.POST or None, initial=initial))


@require_http_methods(["GET", "POST"])
@lead_required
def routing_rule_edit(request: HttpRequest, routing_rule_id: int) -> HttpResponse:
    rule = get_object_or_404(RoutingRule.objects.select_related("policy", "queue", "audit_queue"), pk=routing_rule_id)
    initial = {
        "auto_clear": rule.auto_clear,
        "auto_action": rule.auto_action,
        "audit_rate_clear": rule.audit_rate_clear,
        "audit_rate_action": rule.audit_rate_action,
        "queue": rule.queue_id,
        "audit_queue": rule.audit_queue_id,
    }
    return _rule_page(request, RoutingRuleForm(request.POST or None, initial=initial, rule=rule))
