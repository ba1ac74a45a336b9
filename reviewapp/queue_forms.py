"""Forms of the lead pages for queues and routing rules. The services check the constraints;
these forms parse the input and carry the services' ValidationErrors back onto their fields."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from labeling.models import Policy

from .models import ConsensusRule, Queue, QueueKind, RoutingRule
from .services.queues import Thresholds


class QueueForm(forms.Form):
    """A queue's settings; the slug only when creating (it names the queue in URLs and imports)."""

    slug = forms.SlugField(max_length=64, help_text="Letters, digits and hyphens; fixed once created.")
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    kind = forms.ChoiceField(choices=QueueKind.choices, initial=QueueKind.REVIEW)
    sla_minutes = forms.IntegerField(label="SLA (minutes)", initial=24 * 60, help_text="Due time after a task opens.")
    lease_seconds = forms.IntegerField(initial=600, help_text="How long a claim lasts; at least 30.")
    required_annotations = forms.IntegerField(initial=1, help_text="Independent answers per item, 1–5.")
    adaptive = forms.BooleanField(
        required=False, help_text="On disagreement, ask more reviewers (up to the maximum) before a lead."
    )
    max_annotations = forms.IntegerField(initial=3, help_text="Most answers an item may get; not below required.")
    consensus_rule = forms.ChoiceField(choices=ConsensusRule.choices, initial=ConsensusRule.MAJORITY)
    min_margin = forms.FloatField(initial=0.0, help_text="Majority rule: the winning margin must exceed this (0–1).")
    min_confidence = forms.FloatField(initial=0.8, help_text="Weighted rule: posterior the label needs (0–1].")
    auto_gold = forms.BooleanField(required=False, initial=True, help_text="Agreed labels become gold directly.")
    blind_review = forms.BooleanField(required=False, help_text="Hide model scores and names from reviewers.")
    honeypot_rate = forms.FloatField(initial=0.0, help_text="Share of served items that are known-answer checks.")
    graphic_daily_cap = forms.IntegerField(
        required=False, help_text="Most graphic items per reviewer per day here; empty: no cap."
    )
    onboarding_size = forms.IntegerField(initial=0, help_text="Gold items a new reviewer answers first; 0: none.")
    onboarding_pass_mark = forms.FloatField(initial=0.8, help_text="Share of the onboarding set to answer right.")
    pause_below_accuracy = forms.FloatField(
        required=False, help_text="Pause a reviewer whose honeypot accuracy falls below this; empty: never."
    )
    pause_window = forms.IntegerField(initial=20, help_text="How many of their latest honeypot answers count.")
    show_author_history = forms.BooleanField(
        required=False, initial=True, help_text="Show the author's prior violations (never on blind queues)."
    )
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, queue: Queue | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if queue is not None:
            del self.fields["slug"]

    def settings(self) -> dict[str, Any]:
        """The cleaned values as service keyword arguments (without the slug)."""
        return {key: value for key, value in self.cleaned_data.items() if key != "slug"}


def add_service_error(form: forms.Form, error: ValidationError) -> None:
    """Put a service's ValidationError on the form: on the named fields it has, else on top."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, messages in error.message_dict.items():
        form.add_error(field if field in form.fields else None, messages)


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)


class QueueChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.slug})"


class RoutingRuleForm(forms.Form):
    """A routing rule. The posted `previewed` (a hidden input beside the estimate, not a field) is
    the fingerprint of the values whose estimate was shown: saving other values shows theirs first."""

    policy = forms.ModelChoiceField(queryset=Policy.objects.filter(is_active=True).order_by("name"))
    model_name = forms.CharField(
        max_length=100,
        initial=RoutingRule.ANY_MODEL,
        help_text="The upstream model's name, or * for every model of the policy without a rule of its own.",
    )
    auto_clear = forms.FloatField(required=False, help_text="Scores at or below are cleared; empty: never.")
    auto_action = forms.FloatField(required=False, help_text="Scores at or above are enforced; empty: never.")
    audit_rate_clear = forms.FloatField(initial=0.0, help_text="Share of auto-cleared decisions sent to audit (0–1).")
    audit_rate_action = forms.FloatField(initial=0.0, help_text="Share of auto-enforced decisions sent to audit (0–1).")
    queue = QueueChoiceField(queryset=Queue.objects.filter(is_active=True), help_text="Reviews the middle band.")
    audit_queue = QueueChoiceField(
        queryset=Queue.objects.filter(is_active=True), required=False, help_text="Empty: the review queue."
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.rule is None and data.get("policy") is not None and "model_name" in data:
            policy, model_name = self.target()
            if RoutingRule.objects.filter(policy=policy, model_name=model_name).exists():
                self.add_error("model_name", f"Policy {policy.key} has a rule for {model_name!r} already: edit it.")
        return data

    def __init__(self, *args: Any, rule: RoutingRule | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rule = rule
        if rule is not None:
            del self.fields["policy"], self.fields["model_name"]

    def target(self) -> tuple[Policy, str]:
        if self.rule is not None:
            return self.rule.policy, self.rule.model_name
        return self.cleaned_data["policy"], self.cleaned_data["model_name"].strip() or RoutingRule.ANY_MODEL

    def rule_values(self) -> dict[str, Any]:
        data = self.cleaned_data
        fields = ("auto_clear", "auto_action", "audit_rate_clear", "audit_rate_action", "queue", "audit_queue")
        return {name: data[name] for name in fields}

    def thresholds(self) -> Thresholds:
        data = self.cleaned_data
        return Thresholds(data["auto_clear"], data["auto_action"], data["audit_rate_clear"], data["audit_rate_action"])

    def fingerprint(self) -> str:
        """Of the values an estimate depends on and the rule that would be saved."""
        policy, model_name = self.target()
        values = {**self.rule_values(), "policy": policy.pk, "model_name": model_name}
        values["queue"] = values["queue"].pk
        values["audit_queue"] = values["audit_queue"].pk if values["audit_queue"] else None
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]

    def was_previewed(self) -> bool:
        return self.data.get("previewed") == self.fingerprint()
