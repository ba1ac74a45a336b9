"""Policy-draft pages (leads only): list, write, evaluate with an LLM reviewer, publish.

Thin views: `lead_required` (reviewers get 403), a form, one service of `services.drafts`,
render or redirect. The draft page polls its `evaluation` partial with htmx while the latest
evaluation run is active; without JavaScript, reloading the page shows the same.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from reviewapp.access import lead_required
from reviewapp.audit import Actor
from reviewapp.content import render_guideline

from ...models import Policy, PolicyDraft
from ..models import LLMReviewer
from ..services.drafts import (
    ACTIVE_STATUSES,
    draft_evaluation,
    draft_evaluation_start,
    draft_runs,
    label_changes,
    policy_draft_create,
    policy_draft_publish,
    policy_draft_update,
)

DEFAULT_SAMPLE = 200


class DraftForm(forms.Form):
    title = forms.CharField(max_length=200, help_text="What the draft changes, in a few words.")
    guideline = forms.CharField(widget=forms.Textarea(attrs={"rows": 16}), help_text="Markdown.")
    label_schema = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code"}),
        help_text='JSON: {"labels": [{"value": "violating", "title": "Violating", "description": "…"}, …], …}',
    )
    confirm_label_changes = forms.BooleanField(
        required=False,
        label="I confirm the label changes (a removed label is not renamed: existing gold keeps it)",
    )

    def clean_label_schema(self) -> Any:
        try:
            return json.loads(self.cleaned_data["label_schema"])
        except json.JSONDecodeError as error:
            raise ValidationError(f"Label schema is not valid JSON: {error.msg} (line {error.lineno}).") from None

    @classmethod
    def initial_from(cls, source: Any) -> dict[str, Any]:
        return {
            "title": getattr(source, "title", ""),
            "guideline": source.guideline,
            "label_schema": json.dumps(source.label_schema, indent=2, ensure_ascii=False),
        }


def _saved(form: DraftForm, save: Any) -> PolicyDraft | None:
    """Run `save(**fields)`; on a ValidationError put its messages on the form and return None."""
    if not form.is_valid():
        return None
    try:
        return save(**form.cleaned_data)
    except ValidationError as error:
        if hasattr(error, "error_dict"):
            for name, errors in error.error_dict.items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            form.add_error(None, error)
        return None


@lead_required
def draft_list(request: HttpRequest) -> HttpResponse:
    policies = Policy.objects.filter(is_active=True).order_by("key")
    drafts = PolicyDraft.objects.select_related("policy", "base_version", "published_version").order_by("-created_at")
    by_policy: dict[int, tuple[Policy, list[PolicyDraft]]] = {policy.pk: (policy, []) for policy in policies}
    for draft in drafts:
        by_policy.setdefault(draft.policy_id, (draft.policy, []))[1].append(draft)
    return render(request, "llm/draft_list.html", {"groups": list(by_policy.values())})


@lead_required
def draft_new(request: HttpRequest, policy_key: str) -> HttpResponse:
    policy = get_object_or_404(Policy, key=policy_key, is_active=True)
    base = policy.current_version()
    if base is None:
        messages.error(request, f"{policy.name} has no version in force to draft from.")
        return redirect("llm:draft-list")
    form = DraftForm(request.POST or None, initial=DraftForm.initial_from(base))
    if request.method == "POST":
        save = partial(policy_draft_create, policy=policy, actor=Actor.of(request.user))
        draft = _saved(form, save)
        if draft is not None:
            return redirect("llm:draft-detail", draft.pk)
    return render(request, "llm/draft_form.html", {"form": form, "policy": policy, "base": base, "draft": None})


@lead_required
def draft_edit(request: HttpRequest, draft_id: int) -> HttpResponse:
    draft = get_object_or_404(PolicyDraft.objects.select_related("policy", "base_version"), pk=draft_id)
    if draft.published_version_id is not None:
        messages.error(request, "This draft was published; it is read-only.")
        return redirect("llm:draft-detail", draft.pk)
    form = DraftForm(request.POST or None, initial=DraftForm.initial_from(draft))
    if request.method == "POST":
        save = partial(policy_draft_update, draft=draft, actor=Actor.of(request.user))
        if _saved(form, save) is not None:
            return redirect("llm:draft-detail", draft.pk)
    context = {"form": form, "policy": draft.policy, "base": draft.base_version, "draft": draft}
    return render(request, "llm/draft_form.html", context)


@lead_required
def draft_detail(request: HttpRequest, draft_id: int) -> HttpResponse:
    draft = get_object_or_404(
        PolicyDraft.objects.select_related("policy", "base_version", "published_version"), pk=draft_id
    )
    runs = draft_runs(draft=draft)
    latest = runs[0] if runs else None
    context = {
        "draft": draft,
        "runs": runs,
        "run": latest,
        "running": latest is not None and latest.status in ACTIVE_STATUSES,
        "evaluation": draft_evaluation(run=latest) if latest else None,
        "changes": label_changes(base=draft.base_version, schema=draft.label_schema),
        "reviewers": LLMReviewer.objects.filter(policy=draft.policy, is_active=True).order_by("name"),
        "default_sample": DEFAULT_SAMPLE,
        "guideline_html": render_guideline(draft.guideline),
    }
    template = "llm/draft_detail.html" + ("#evaluation" if request.headers.get("HX-Request") else "")
    return render(request, template, context)


@require_POST
@lead_required
def draft_evaluate(request: HttpRequest, draft_id: int) -> HttpResponse:
    draft = get_object_or_404(PolicyDraft.objects.select_related("policy"), pk=draft_id)
    try:
        reviewer_id, n = int(request.POST.get("reviewer") or 0), int(request.POST.get("n") or DEFAULT_SAMPLE)
    except ValueError:
        messages.error(request, "Choose a reviewer and give the sample size as a whole number.")
        return redirect("llm:draft-detail", draft.pk)
    reviewer = LLMReviewer.objects.filter(pk=reviewer_id, policy=draft.policy).first()
    try:
        if reviewer is None:
            raise ValidationError(f"Choose an LLM reviewer of {draft.policy.name}.")
        draft_evaluation_start(draft=draft, reviewer=reviewer, n=n, actor=cast(User, request.user))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    return redirect("llm:draft-detail", draft.pk)


@require_POST
@lead_required
def draft_publish(request: HttpRequest, draft_id: int) -> HttpResponse:
    draft = get_object_or_404(PolicyDraft, pk=draft_id)
    try:
        version = policy_draft_publish(draft=draft, actor=Actor.of(request.user))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Published as {version}. Existing gold was not relabelled.")
    return redirect("llm:draft-detail", draft.pk)


@require_POST
@lead_required
def guideline_preview(request: HttpRequest) -> HttpResponse:
    """The guideline textarea rendered as the workspace shows it (htmx target of the form)."""
    html = render_guideline(request.POST.get("guideline", "")[:100_000])
    return render(request, "llm/draft_preview.html", {"guideline_html": html})
