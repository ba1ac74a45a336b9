"""Forms of the lead pages: create a dataset (with its first version), choose an export."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from labeling.models import GoldSource, Policy
from reviewapp.models import TaskReason

from .models import (
    DEFAULT_GROUP_BY,
    GROUP_BY_CONTENT,
    GROUP_BY_META_PREFIX,
    GROUP_BY_TEXT,
    ExportFormat,
    Split,
    check_group_by,
)
from .snapshots import SnapshotFilter, matching_count

_EACH_ITEM = "item"  # group_by '' (a form that leaves the choice out gets the default, content)
GROUPING = [
    (GROUP_BY_CONTENT, "Same content together: exact and near-duplicate texts (recommended)"),
    (_EACH_ITEM, "Each item on its own (duplicate texts can land on both sides)"),
    (GROUP_BY_TEXT, "Exact duplicate texts together (same text up to case and spacing; near duplicates not)"),
    ("meta", "Same value of a metadata field together (e.g. conversation_id)"),
]


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=64, help_text="Used in URLs and file names, e.g. hate-speech-en.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    policies = forms.MultipleChoiceField(required=False, help_text="None selected: every policy.")
    languages = forms.CharField(required=False, help_text="Comma-separated language codes, e.g. en, de. Empty: any.")
    routes = forms.MultipleChoiceField(required=False, choices=TaskReason.choices, help_text="Empty: any route.")
    label_sources = forms.MultipleChoiceField(
        required=False, choices=GoldSource.choices, widget=forms.CheckboxSelectMultiple, help_text="Empty: all."
    )
    date_from = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    grouping = forms.ChoiceField(required=False, choices=GROUPING, initial=DEFAULT_GROUP_BY)
    group_field = forms.CharField(required=False, max_length=64, initial="conversation_id")
    train_percent = forms.IntegerField(min_value=0, max_value=100, initial=80)
    dev_percent = forms.IntegerField(min_value=0, max_value=100, initial=10)
    redact_pii_default = forms.BooleanField(required=False, label="Redact PII in exports by default")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        policies = self.fields["policies"]
        assert isinstance(policies, forms.MultipleChoiceField)
        policies.choices = [(p.key, p.name) for p in Policy.objects.filter(is_active=True)]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("train_percent", 0) + data.get("dev_percent", 0) > 100:
            raise ValidationError("Train and dev shares add up to more than 100%.")
        grouping = data.get("grouping") or DEFAULT_GROUP_BY
        if grouping == "meta":
            data["group_by"] = f"{GROUP_BY_META_PREFIX}{data.get('group_field', '')}"
        else:
            data["group_by"] = "" if grouping == _EACH_ITEM else grouping
        check_group_by(data["group_by"])
        raw = {
            "policies": data.get("policies") or [],
            "languages": [part.strip() for part in data.get("languages", "").split(",") if part.strip()],
            "routes": data.get("routes") or [],
            "label_sources": data.get("label_sources") or [],
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }
        data["filters"] = SnapshotFilter.from_json(raw)
        if matching_count(data["filters"]) == 0:
            raise ValidationError("No gold labels match this filter yet.")
        return data


class DownloadForm(forms.Form):
    format = forms.ChoiceField(choices=ExportFormat.choices, initial=ExportFormat.JSONL)
    split = forms.ChoiceField(choices=[("", "All splits"), *Split.choices], required=False)
    redact_pii = forms.BooleanField(required=False, label="Redact PII")
