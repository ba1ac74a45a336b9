"""Policy pages (leads only): the list, a policy's version history and re-review results, and the
diff between any two of its versions. Drafts and publishing live in `labeling.llm.views.drafts`.

Thin views: `lead_required` (reviewers get 403), read services, render.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.db.models.functions import Now
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from reviewapp.access import lead_required
from reviewapp.audit import Actor

from .models import DraftStatus, Policy, PolicyPublication, PolicyVersion
from .services.policies import policy_create
from .services.policy_versions import policy_diff
from .services.relabel import relabel_distribution, relabel_share_rows


@lead_required
def policy_list(request: HttpRequest) -> HttpResponse:
    policies = Policy.objects.filter(is_active=True).annotate(
        in_review=Count("drafts", filter=Q(drafts__status=DraftStatus.IN_REVIEW))
    )
    rows = [
        {
            "policy": policy,
            "current": policy.current_version(),
            "scheduled": policy.versions.filter(effective_at__gt=Now()).order_by("number").first(),
            "in_review": policy.in_review,
        }
        for policy in policies.order_by("key")
    ]
    return render(request, "labeling/policy_list.html", {"rows": rows})


# A starting point a lead edits: two labels, the first the "nothing wrong" one.
STARTER_SCHEMA = {
    "labels": [
        {"value": "not_violating", "title": "Not violating", "description": "Allowed under this policy."},
        {"value": "violating", "title": "Violating", "description": "Breaks this policy."},
    ],
    "allow_multiple": False,
    "severity_levels": ["low", "medium", "high"],
}


class PolicyForm(forms.Form):
    key = forms.CharField(max_length=64, help_text="Stable identifier used by the API and ingest, e.g. 'harassment'.")
    name = forms.CharField(max_length=200)
    severity_weight = forms.FloatField(
        initial=1.0, help_text="Relative harm of a miss; multiplies the priority of this policy's review tasks."
    )
    guideline = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}), help_text="Markdown.")
    label_schema = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}),
        initial=json.dumps(STARTER_SCHEMA, indent=2),
        help_text="Labels in the order reviewers see them (number keys 1–9), severity levels from least to most "
        "severe, and whether an item may carry several labels. Later versions are edited in a draft, row by row.",
    )

    def clean_label_schema(self) -> object:
        try:
            return json.loads(self.cleaned_data["label_schema"])
        except json.JSONDecodeError as error:
            raise forms.ValidationError(f"Not valid JSON: {error.msg} (line {error.lineno}).") from None


@lead_required
def policy_new(request: HttpRequest) -> HttpResponse:
    """Create a policy with its first version (in force at once); its next versions come from drafts."""
    form = PolicyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            policy = policy_create(**form.cleaned_data, actor=Actor.of(request.user))
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            return redirect("policy-detail", policy.key)
    return render(request, "labeling/policy_form.html", {"form": form})


@lead_required
def policy_detail(request: HttpRequest, policy_key: str) -> HttpResponse:
    policy = get_object_or_404(Policy, key=policy_key)
    current = policy.current_version()
    versions = list(policy.versions.order_by("-number"))
    publications = {
        p.version_id: p
        for p in PolicyPublication.objects.filter(version__policy=policy).select_related(
            "relabel_queue", "previous_version", "version"
        )
    }
    rows = [
        {
            "version": version,
            "previous": versions[index + 1] if index + 1 < len(versions) else None,
            "publication": publications.get(version.pk),
            "scheduled": current is None or version.number > current.number,
        }
        for index, version in enumerate(versions)
    ]
    context = {
        "policy": policy,
        "current": current,
        "versions": rows,
        "drafts": policy.drafts.select_related("base_version", "published_version").order_by("-created_at"),
        "comparisons": [_comparison(policy, p) for p in publications.values() if p.relabel_mode != "none"],
    }
    return render(request, "labeling/policy_detail.html", context)


def _comparison(policy: Policy, publication: PolicyPublication) -> dict[str, Any]:
    distribution = relabel_distribution(
        policy=policy, from_version=publication.previous_version, to_version=publication.version
    )
    return {
        "version": publication.version,
        "publication": publication,
        "distribution": distribution,
        "rows": relabel_share_rows(distribution),
    }


class DiffForm(forms.Form):
    a = forms.TypedChoiceField(coerce=int, label="From version")
    b = forms.TypedChoiceField(coerce=int, label="To version")

    def __init__(self, *args: Any, versions: list[PolicyVersion], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(v.number, f"v{v.number}") for v in versions]
        self.fields["a"].choices = self.fields["b"].choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("a") is not None and data.get("a") == data.get("b"):
            raise forms.ValidationError("Choose two different versions.")
        return data


@lead_required
def policy_diff_view(request: HttpRequest, policy_key: str) -> HttpResponse:
    """/lead/policies/<key>/diff?a=&b=: without a and b, the newest version against the one before."""
    policy = get_object_or_404(Policy, key=policy_key)
    versions = {v.number: v for v in policy.versions.order_by("number")}
    numbers = sorted(versions)
    given = request.GET if "a" in request.GET or "b" in request.GET else None
    default = {"a": numbers[-2], "b": numbers[-1]} if len(numbers) > 1 else None
    form = DiffForm(given or default, versions=list(versions.values()))
    context: dict[str, Any] = {"policy": policy, "form": form, "diff": None}
    if form.is_bound and form.is_valid():
        a, b = versions[form.cleaned_data["a"]], versions[form.cleaned_data["b"]]
        context.update(diff=policy_diff(a=a, b=b), diff_a=f"v{a.number}", diff_b=f"v{b.number}")
    status = 400 if form.is_bound and form.errors else 200
    return render(request, "labeling/policy_diff.html", context, status=status)
