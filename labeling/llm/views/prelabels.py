"""The pre-labels settings page for leads: per queue, which LLM reviewer suggests labels to the
reviewers, on what share of tasks, whether its label votes in consensus, and what the
suggestions did to the reviewers' accuracy (automation bias)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from reviewapp.access import lead_required
from reviewapp.audit import Actor
from reviewapp.models import Queue

from ..models import LLMReviewer
from ..services.suggestions import (
    MAX_SUGGEST_FRACTION,
    automation_bias_report,
    honeypot_odds_without_suggestion,
    prelabels_configure,
    prelabels_refusal,
    queue_policies,
    queue_prelabels,
)


class PrelabelsForm(forms.Form):
    reviewer = forms.ModelChoiceField(
        queryset=LLMReviewer.objects.none(), required=False, empty_label="none (pre-labels off)", label="LLM reviewer"
    )
    enabled = forms.BooleanField(required=False, label="Show suggestions to reviewers")
    suggest_fraction = forms.FloatField(
        min_value=0,
        max_value=MAX_SUGGEST_FRACTION,
        initial=0.5,
        label="Share of eligible tasks that show the suggestion",
        widget=forms.NumberInput(attrs={"step": "0.05"}),
    )
    counts_toward_consensus = forms.BooleanField(required=False, label="The LLM's label votes in consensus")

    def __init__(self, *args: Any, queue: Queue, **kwargs: Any) -> None:
        super().__init__(*args, prefix=f"q{queue.pk}", label_suffix="", **kwargs)
        policies = [p.pk for p in queue_policies(queue)]
        self.fields["reviewer"].queryset = LLMReviewer.objects.filter(policy_id__in=policies, is_active=True)


@require_GET
@lead_required
def prelabels_list(request: HttpRequest) -> HttpResponse:
    return render(request, "llm/prelabels_list.html", {"rows": [_row(queue) for queue in _queues()]})


@require_POST
@lead_required
def prelabels_update(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = get_object_or_404(_queues(), pk=queue_id)
    form = PrelabelsForm(request.POST, queue=queue)
    if form.is_valid():
        try:
            prelabels_configure(queue=queue, actor=Actor.of(request.user), **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Pre-labels of {queue.name} saved.")
            return redirect("llm:prelabels-list")
    rows = [_row(q, form if q.pk == queue.pk else None) for q in _queues()]
    return render(request, "llm/prelabels_list.html", {"rows": rows}, status=400)


def _queues() -> Any:
    return Queue.objects.filter(is_active=True).select_related("prelabels__reviewer").order_by("name")


def _row(queue: Queue, form: PrelabelsForm | None = None) -> dict[str, Any]:
    settings = queue_prelabels(queue)
    refusal = prelabels_refusal(queue)
    if form is None and not refusal:
        initial: dict[str, Any] = {}
        if settings is not None:
            initial = {
                "reviewer": settings.reviewer_id if settings.enabled or settings.counts_toward_consensus else None,
                "enabled": settings.enabled,
                "suggest_fraction": settings.suggest_fraction,
                "counts_toward_consensus": settings.counts_toward_consensus,
            }
        form = PrelabelsForm(queue=queue, initial=initial)
    fraction = settings.suggest_fraction if settings and settings.enabled else 0.0
    return {
        "queue": queue,
        "settings": settings,
        "refusal": refusal,
        "form": form,
        "honeypot_odds": honeypot_odds_without_suggestion(honeypot_rate=queue.honeypot_rate, suggest_fraction=fraction),
        "automation_bias": automation_bias_report(queue=queue) if settings is not None else None,
    }
