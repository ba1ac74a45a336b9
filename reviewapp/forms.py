"""Workspace and token forms. They parse what the browser sends; the services decide what is allowed."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User

from .models import ServiceToken

SKIP_REASONS = [
    ("not my language", "Not in a language I read"),
    ("need more context", "Needs more context than shown"),
    ("media did not load", "Media did not load"),
    ("conflict of interest", "Conflict of interest"),
    ("other", "Other"),
]


class AnnotationForm(forms.Form):
    submission_id = forms.UUIDField(widget=forms.HiddenInput)
    labels = forms.Field(required=False)  # values checked against the policy version by the service
    severity = forms.CharField(required=False, max_length=50)
    rationale = forms.CharField(required=False, max_length=5000, widget=forms.Textarea)
    handle_time_ms = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)
    policy_version = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            import uuid

            # One id per rendered form: a double click or a resubmitted form is the same answer.
            self.initial.setdefault("submission_id", uuid.uuid4())

    def clean_labels(self) -> list[str]:
        labels = self.data.getlist("labels") if hasattr(self.data, "getlist") else self.data.get("labels", [])
        if not labels:
            raise forms.ValidationError("Choose a label (number keys 1–9).")
        return list(labels)

    def submission(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "submission_id": data["submission_id"],
            "labels": data["labels"],
            "severity": data["severity"],
            "rationale": data["rationale"],
            "handle_time_ms": data["handle_time_ms"],
            "policy_version_id": data["policy_version"],
        }


class SkipForm(forms.Form):
    reason = forms.ChoiceField(choices=SKIP_REASONS)


class EscalateForm(forms.Form):
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea)


class ServiceTokenForm(forms.Form):
    """A new API token: its name, scopes (from the known list only) and the person it acts for.

    Used by the admins' token page and the Django admin's add form; the secret is never a field:
    `token_create` generates it.
    """

    name = forms.CharField(max_length=100, help_text="Who will use it, e.g. the calling service.")
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in ServiceToken.SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="What it may do; grant only what the caller needs.",
    )
    user = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"),
        required=False,
        empty_label="nobody (a service)",
        help_text="The person it acts for, for personal tokens (tasks:write acts as that reviewer).",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the token a name.")
        if ServiceToken.objects.filter(name=name).exists():
            raise forms.ValidationError("A token with this name exists; choose another name or revoke that one.")
        return name
