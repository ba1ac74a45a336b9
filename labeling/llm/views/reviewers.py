"""Lead pages of LLM reviewers: the list, the configuration form, a reviewer's page with its run
forms, and a run's progress (htmx polling while it runs, a plain page otherwise)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labeling.models import Policy, PolicyVersion
from reviewapp.access import lead_required
from reviewapp.audit import Actor
from reviewapp.models import Queue, ReviewTask, TaskStatus

from ..models import DEFAULT_TEMPLATE, BackendKind, LLMReviewer, LLMRun, RunKind, RunStatus
from ..services.reports import injection_report, llm_beside_humans
from ..services.reviewers import llm_reviewer_create, llm_reviewer_update
from ..services.runs import FINISHED, llm_gold_sample_ids, llm_run_cancel, llm_run_start

RECENT_RUNS = 20
MAX_RUN_ITEMS = 5000
PAGE_KINDS = (RunKind.GOLD_SAMPLE, RunKind.INJECTION, RunKind.QUEUE)


class ReviewerForm(forms.Form):
    """A reviewer's configuration. The API key field is write-only: it is never rendered back."""

    name = forms.CharField(max_length=100)
    policy = forms.ModelChoiceField(queryset=Policy.objects.filter(is_active=True))
    policy_version = forms.ModelChoiceField(
        queryset=PolicyVersion.objects.select_related("policy").order_by("policy__name", "-number"),
        required=False,
        help_text="Empty: the version in force now.",
    )
    backend = forms.ChoiceField(choices=BackendKind.choices, initial=BackendKind.LOCAL)
    model_name = forms.CharField(max_length=200, initial="gemma-3-270m")
    base_url = forms.CharField(
        max_length=200,
        required=False,
        label="Base URL",
        help_text="OpenAI-compatible endpoints only, e.g. https://llm.example.com/v1.",
    )
    api_key = forms.CharField(
        required=False,
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted, never shown again.",
    )
    clear_api_key = forms.BooleanField(required=False, label="Remove the stored key")
    prompt_template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16}),
        initial=DEFAULT_TEMPLATE,
        help_text="Fields: {policy_name}, {guideline}, {labels} and {content} (the last two required).",
    )
    timeout_seconds = forms.IntegerField(min_value=1, initial=30)
    max_retries = forms.IntegerField(min_value=0, initial=3)
    requests_per_minute = forms.IntegerField(min_value=0, initial=0, help_text="0: no limit.")
    cost_per_million_tokens = forms.DecimalField(min_value=0, max_digits=10, decimal_places=4, initial=0)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, reviewer: LLMReviewer | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if reviewer is None:
            del self.fields["clear_api_key"], self.fields["is_active"]
            return
        del self.fields["policy"]
        version_field = cast(forms.ModelChoiceField, self.fields["policy_version"])
        version_field.queryset = PolicyVersion.objects.filter(policy=reviewer.policy_id).order_by("-number")
        version_field.required = True
        if reviewer.api_key_ciphertext:
            self.fields["api_key"].help_text = "A key is set; leave blank to keep it."

    def clean_prompt_template(self) -> str:
        # Browsers send CRLF: keep the template byte-identical to what was typed, with \n line ends.
        return self.cleaned_data["prompt_template"].replace("\r\n", "\n")


class RunStartForm(forms.Form):
    kind = forms.ChoiceField(choices=[(k.value, k.label) for k in PAGE_KINDS])
    n = forms.IntegerField(min_value=1, max_value=MAX_RUN_ITEMS, initial=200, label="Items")
    queue = forms.ModelChoiceField(queryset=Queue.objects.filter(is_active=True), required=False)
    budget_items = forms.IntegerField(min_value=1, required=False, label="Item budget")
    budget_tokens = forms.IntegerField(min_value=1, required=False, label="Token budget")
    chunk_size = forms.IntegerField(min_value=1, max_value=500, initial=20)
    seed = forms.IntegerField(min_value=0, initial=0, required=False, label="Sample seed")


def _reviewer(reviewer_id: int) -> LLMReviewer:
    return get_object_or_404(LLMReviewer.objects.select_related("policy", "policy_version", "account"), pk=reviewer_id)


@require_GET
@lead_required
def reviewer_list(request: HttpRequest) -> HttpResponse:
    latest = LLMRun.objects.filter(reviewer=OuterRef("pk")).order_by("-created_at", "-pk")
    reviewers = (
        LLMReviewer.objects.select_related("policy", "policy_version")
        .annotate(latest_run_id=Subquery(latest.values("pk")[:1]), latest_status=Subquery(latest.values("status")[:1]))
        .order_by("policy__name", "name")
    )
    statuses = dict(RunStatus.choices)
    rows = [(r, statuses.get(r.latest_status, "")) for r in reviewers]
    return render(request, "llm/reviewer_list.html", {"rows": rows})


@require_http_methods(["GET", "POST"])
@lead_required
def reviewer_new(request: HttpRequest) -> HttpResponse:
    form = ReviewerForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            reviewer = llm_reviewer_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"LLM reviewer {reviewer.name} saved. Run it on a gold sample to measure it.")
            return redirect("llm:reviewer", reviewer.pk)
    return render(request, "llm/reviewer_form.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@lead_required
def reviewer_edit(request: HttpRequest, reviewer_id: int) -> HttpResponse:
    reviewer = _reviewer(reviewer_id)
    initial = {
        f: getattr(reviewer, f) for f in ReviewerForm.base_fields if f not in ("api_key", "clear_api_key", "policy")
    }
    form = ReviewerForm(request.POST or None, initial=initial, reviewer=reviewer)
    if request.method == "POST" and form.is_valid():
        try:
            llm_reviewer_update(reviewer_id=reviewer.pk, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"LLM reviewer {reviewer.name} updated.")
            return redirect("llm:reviewer", reviewer.pk)
    context = {"form": form, "reviewer": reviewer}
    return render(request, "llm/reviewer_form.html", context, status=400 if form.errors else 200)


def _detail_context(reviewer: LLMReviewer, run_form: RunStartForm | None = None) -> dict[str, Any]:
    runs = list(reviewer.runs.order_by("-created_at", "-pk")[:RECENT_RUNS])
    injection_run = reviewer.runs.filter(kind=RunKind.INJECTION, status=RunStatus.DONE).order_by("-created_at").first()
    return {
        "reviewer": reviewer,
        "runs": runs,
        "run_form": run_form or RunStartForm(initial={"chunk_size": 20, "n": 200}),
        "queues": Queue.objects.filter(is_active=True).order_by("name"),
        "llm_reviewer": reviewer,
        "llm_figures": llm_beside_humans(policy=reviewer.policy, reviewer=reviewer),
        "injection": injection_report(run=injection_run) if injection_run else None,
    }


@require_GET
@lead_required
def reviewer_detail(request: HttpRequest, reviewer_id: int) -> HttpResponse:
    return render(request, "llm/reviewer_detail.html", _detail_context(_reviewer(reviewer_id)))


def _run_items(reviewer: LLMReviewer, data: dict[str, Any]) -> list[int]:
    """The items a run form asks for: a seeded gold sample, or open tasks of the chosen queue."""
    if data["kind"] != RunKind.QUEUE:
        return llm_gold_sample_ids(policy=reviewer.policy, n=data["n"], seed=data["seed"] or 0)
    if data["queue"] is None:
        raise ValidationError({"queue": "Choose the queue whose open tasks the reviewer labels."})
    open_tasks = ReviewTask.objects.filter(queue=data["queue"], policy=reviewer.policy, status=TaskStatus.OPEN)
    ids = open_tasks.order_by("-priority", "pk").values_list("item_id", flat=True)
    return list(dict.fromkeys(ids))[: data["n"]]


@require_POST
@lead_required
def run_start(request: HttpRequest, reviewer_id: int) -> HttpResponse:
    reviewer = _reviewer(reviewer_id)
    form = RunStartForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            item_ids = _run_items(reviewer, data)
            if not item_ids:
                raise ValidationError(
                    "No items to run on: the policy has no gold items with tasks, or the queue no open tasks."
                )
            run = llm_run_start(
                reviewer=reviewer, kind=data["kind"], item_ids=item_ids, queue=data["queue"],
                budget_items=data["budget_items"], budget_tokens=data["budget_tokens"],
                chunk_size=data["chunk_size"], actor=request.user,
            )  # fmt: skip
        except ValidationError as error:
            form.add_error(None, error.messages if hasattr(error, "error_dict") else error)
        else:
            return redirect("llm:run", run.pk)
    return render(request, "llm/reviewer_detail.html", _detail_context(reviewer, form), status=400)


def _progress(run: LLMRun) -> dict[str, Any]:
    total = len(run.item_ids)
    if run.budget_items is not None:
        total = min(total, run.budget_items)
    end = run.finished_at or timezone.now()
    seconds = max((end - run.created_at).total_seconds(), 0.001)
    return {
        "run": run,
        "total": total,
        "percent": round(100 * run.items_done / total) if total else 100,
        "items_per_second": run.items_done / seconds if run.items_done else None,
        "active": run.status not in FINISHED,
    }


@require_GET
@lead_required
def run_detail(request: HttpRequest, llm_run_id: int) -> HttpResponse:
    run = get_object_or_404(
        LLMRun.objects.select_related("reviewer__policy", "queue", "draft", "started_by"), pk=llm_run_id
    )
    template = "llm/run_detail.html" + ("#progress" if request.headers.get("HX-Request") else "")
    return render(request, template, _progress(run))


@require_POST
@lead_required
def run_cancel(request: HttpRequest, llm_run_id: int) -> HttpResponse:
    run = get_object_or_404(LLMRun, pk=llm_run_id)
    llm_run_cancel(run_id=run.pk, actor=Actor.of(request.user))
    messages.success(request, f"Run {run.pk} cancelled.")
    return redirect("llm:run", run.pk)
