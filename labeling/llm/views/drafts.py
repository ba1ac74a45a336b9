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
from reviewapp.models import Queue

from ...models import Policy, PolicyDraft, PolicyVersion, RelabelMode
from ...services.policy_versions import policy_diff
from ...services.relabel import gold_relabel_candidates
from ..models import LLMReviewer
from ..services.draft_evaluation import ACTIVE_STATUSES, draft_evaluation, draft_evaluation_start, draft_runs
from ..services.drafts import (
    MAX_SAMPLE,
    RelabelChoice,
    label_changes,
    policy_draft_create,
    policy_draft_publish,
    policy_draft_request_review,
    policy_draft_update,
)

DEFAULT_SAMPLE = 200


class LabelRowForm(forms.Form):
    """One label of the schema editor; a row left without a value is ignored."""

    value = forms.CharField(required=False, max_length=64)
    title = forms.CharField(required=False, max_length=200)
    description = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        number = int(self.prefix.rsplit("-", 1)[-1]) + 1 if self.prefix else 1
        for name in ("value", "title", "description"):
            self.fields[name].label = f"Label {number} {name}"


class BaseLabelRows(forms.BaseFormSet):
    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        number = "" if index is None else f" {index + 1}"
        form.fields["ORDER"].label = f"Label{number} position"
        form.fields["DELETE"].label = f"Remove label{number}"


LabelRows = forms.formset_factory(
    LabelRowForm, formset=BaseLabelRows, extra=2, can_order=True, can_delete=True, max_num=50
)


def _normal_schema(schema: Any) -> Any:
    """A schema with defaults filled in and empty titles/descriptions dropped, to tell whether
    an editor changed it (the JSON and the label rows both start from the same schema)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("labels"), list):
        return schema
    labels = [
        {k: v for k, v in label.items() if not (k in ("title", "description") and not v)}
        if isinstance(label, dict)
        else label
        for label in schema["labels"]
    ]
    return {
        **schema,
        "labels": labels,
        "allow_multiple": schema.get("allow_multiple", False),
        "severity_levels": schema.get("severity_levels", []),
    }


class DraftForm(forms.Form):
    """A draft's fields. The label schema is edited either in the label rows (value, title,
    description, order, remove; severity scale; multi-label) or as JSON: whichever of the two the
    lead changed is saved; changing both is refused rather than guessing."""

    title = forms.CharField(max_length=200, help_text="What the draft changes, in a few words.")
    guideline = forms.CharField(widget=forms.Textarea(attrs={"rows": 16}), help_text="Markdown.")
    severity_levels = forms.CharField(
        required=False, max_length=500, help_text="From least to most severe, comma-separated; empty for none."
    )
    allow_multiple = forms.BooleanField(required=False, label="Several labels per item")
    label_schema = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false", "class": "code"}),
        label="Label schema (JSON)",
        help_text='{"labels": [{"value": "violating", "title": "Violating", "description": "…"}, …], …}',
    )
    label_schema_initial = forms.CharField(widget=forms.HiddenInput, required=False)
    confirm_removed = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Confirm each label this draft removes (a removed label is not renamed: existing gold keeps it)",
    )

    def __init__(self, *args: Any, base: PolicyVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = self._initial_schema()
        self.rows = LabelRows(
            self.data if self.is_bound else None,
            prefix="labels",
            initial=[
                {
                    "value": label["value"],
                    "title": label.get("title", ""),
                    "description": label.get("description", ""),
                    "ORDER": index + 1,
                }
                for index, label in enumerate(schema.get("labels", []) if isinstance(schema, dict) else [])
            ],
        )
        # Offer a confirmation for each label of the base version that the posted schema drops.
        try:
            kept = {label["value"] for label in self._resolved_schema()["labels"]} if self.is_bound else None
        except (ValidationError, ValueError, TypeError, KeyError):
            kept = None
        removed = [value for value in base.label_values if kept is not None and value not in kept]
        self.fields["confirm_removed"].choices = [
            (value, f"Remove {base.label_title(value)} ({value})") for value in removed
        ]

    def _initial_schema(self) -> Any:
        text = self.data.get("label_schema_initial") if self.is_bound else self.initial.get("label_schema")
        try:
            return json.loads(text or "{}")
        except ValueError:
            return {}

    def _posted_json(self) -> Any:
        text = self.data.get("label_schema", "")
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise ValidationError(f"Label schema is not valid JSON: {error.msg} (line {error.lineno}).") from None

    def _from_rows(self, posted: Any) -> dict[str, Any]:
        if not self.rows.is_valid():
            raise ValidationError("Correct the label rows below.")
        extra = {label.get("value"): label for label in posted.get("labels", []) if isinstance(label, dict)}
        labels = []
        for row in self.rows.ordered_forms:
            data = row.cleaned_data
            if not data.get("value") or data.get("DELETE"):
                continue
            label = {**extra.get(data["value"], {}), "value": data["value"].strip()}
            for key in ("title", "description"):
                label.pop(key, None)
                if data.get(key, "").strip():
                    label[key] = data[key].strip()
            labels.append(label)
        levels = [level.strip() for level in self.data.get("severity_levels", "").split(",") if level.strip()]
        schema: dict[str, Any] = {
            "labels": labels,
            "allow_multiple": self.data.get("allow_multiple") in ("on", "true", "1"),
            "severity_levels": levels,
        }
        if isinstance(posted, dict) and "scales" in posted:
            schema["scales"] = posted["scales"]
        return schema

    def _resolved_schema(self) -> Any:
        """The schema to save: the JSON when it was edited, else the label rows when they were
        (or when the form has no rows: a plain JSON post); ValidationError when both were."""
        posted = self._posted_json()
        if "labels-TOTAL_FORMS" not in self.data:
            return posted
        initial = _normal_schema(self._initial_schema())
        built = self._from_rows(posted if isinstance(posted, dict) else {})
        json_edited, rows_edited = _normal_schema(posted) != initial, _normal_schema(built) != initial
        if json_edited and rows_edited:
            raise ValidationError(
                "You changed the labels both in the rows and in the JSON: make the change in one of them."
            )
        return posted if json_edited else built

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        try:
            data["label_schema"] = self._resolved_schema()
        except ValidationError as error:
            self.add_error("label_schema", error)
        for name in ("severity_levels", "allow_multiple", "label_schema_initial"):
            data.pop(name, None)
        return data

    @classmethod
    def initial_from(cls, source: Any) -> dict[str, Any]:
        schema = json.dumps(source.label_schema, indent=2, ensure_ascii=False)
        return {
            "title": getattr(source, "title", ""),
            "guideline": source.guideline,
            "label_schema": schema,
            "label_schema_initial": schema,
            "severity_levels": ", ".join(source.label_schema.get("severity_levels", [])),
            "allow_multiple": source.label_schema.get("allow_multiple", False),
        }


def _saved(form: DraftForm, save: Any) -> PolicyDraft | None:
    """Run `save(**fields)`; on a ValidationError put its messages on the form and return None."""
    if not form.is_valid():
        return None
    try:
        return save(**form.cleaned_data)
    except ValidationError as error:
        _add_errors(form, error)
        return None


def _add_errors(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error)


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
    form = DraftForm(request.POST or None, initial=DraftForm.initial_from(base), base=base)
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
    form = DraftForm(request.POST or None, initial=DraftForm.initial_from(draft), base=draft.base_version)
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
        "diff": policy_diff(a=draft.base_version, b=draft),
        "diff_a": f"v{draft.base_version.number}",
        "diff_b": "this draft",
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


class PublishForm(forms.Form):
    effective_at = forms.DateTimeField(
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        label="In force from",
        help_text="Leave empty for now. A later time schedules the version; a time in the past is refused.",
    )
    relabel_mode = forms.ChoiceField(
        choices=RelabelMode.choices, initial=RelabelMode.NONE, widget=forms.RadioSelect, label="Re-review existing gold"
    )
    relabel_sample_size = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_SAMPLE, label="Sample size", help_text="For a stratified sample."
    )
    relabel_queue = forms.ModelChoiceField(
        queryset=Queue.objects.filter(is_active=True).order_by("name"),
        required=False,
        label="Queue for re-review tasks",
    )
    seed = forms.IntegerField(
        required=False, min_value=0, label="Sample seed", help_text="The same seed draws the same sample."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        queue_field = cast(forms.ModelChoiceField, self.fields["relabel_queue"])
        queue_field.label_from_instance = lambda queue: f"{queue.name} ({queue.slug})"

    def relabel_choice(self) -> RelabelChoice:
        data = self.cleaned_data
        return RelabelChoice(
            mode=data["relabel_mode"],
            queue=data["relabel_queue"],
            sample_size=data["relabel_sample_size"],
            seed=data["seed"] or 0,
        )


@lead_required
def draft_publish(request: HttpRequest, draft_id: int) -> HttpResponse:
    """GET: the publish page (diff, predicted impact, re-review choice); POST: publish."""
    draft = get_object_or_404(PolicyDraft.objects.select_related("policy", "base_version"), pk=draft_id)
    if draft.published_version_id is not None and request.method != "POST":
        messages.error(request, "This draft was already published; it cannot be published twice.")
        return redirect("llm:draft-detail", draft.pk)
    form = PublishForm(request.POST or None, initial={"seed": draft.pk})
    if request.method == "POST" and form.is_valid():
        try:
            version = policy_draft_publish(
                draft=draft,
                actor=Actor.of(request.user),
                effective_at=form.cleaned_data["effective_at"],
                relabel=form.relabel_choice(),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            tasks = version.publication.relabel_tasks
            messages.success(
                request, f"Published as {version}; {tasks} re-review task{'s' if tasks != 1 else ''} opened."
            )
            return redirect("policy-detail", draft.policy.key)
    return render(request, "llm/draft_publish.html", _publish_context(draft, form), status=400 if form.errors else 200)


def _publish_context(draft: PolicyDraft, form: PublishForm) -> dict[str, Any]:
    runs = draft_runs(draft=draft)
    latest = runs[0] if runs else None
    candidates = gold_relabel_candidates(policy=draft.policy, from_version=draft.base_version)
    return {
        "draft": draft,
        "form": form,
        "diff": policy_diff(a=draft.base_version, b=draft),
        "diff_a": f"v{draft.base_version.number}",
        "diff_b": "this draft",
        "run": latest,
        "running": latest is not None and latest.status in ACTIVE_STATUSES,
        "evaluation": draft_evaluation(run=latest) if latest else None,
        "candidates": candidates.count(),
    }


@require_POST
@lead_required
def draft_request_review(request: HttpRequest, draft_id: int) -> HttpResponse:
    draft = get_object_or_404(PolicyDraft, pk=draft_id)
    try:
        policy_draft_request_review(draft=draft, actor=Actor.of(request.user))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Sent for review: it can now be published.")
    return redirect("llm:draft-detail", draft.pk)


@require_POST
@lead_required
def guideline_preview(request: HttpRequest) -> HttpResponse:
    """The guideline textarea rendered as the workspace shows it (htmx target of the form)."""
    html = render_guideline(request.POST.get("guideline", "")[:100_000])
    return render(request, "llm/draft_preview.html", {"guideline_html": html})
