"""The item search form: parses the search page's (and GET /api/v1/items') query string.

A value it cannot use is a field error shown beside the field, never a server error.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models.functions import Now
from django.http import QueryDict

from labeling.models import Policy, PolicyVersion

from .errors import Invalid
from .services.search import STATUSES, Cursor, ItemFilters, cursor_decode

TEXT_MIN_LENGTH = 3


class ItemSearchForm(forms.Form):
    external_id = forms.CharField(required=False, max_length=255, label="External id")
    source = forms.CharField(required=False, max_length=100)
    text = forms.CharField(
        required=False,
        min_length=TEXT_MIN_LENGTH,
        max_length=200,
        label="Text contains",
        help_text=f"Case-insensitive substring of the text, at least {TEXT_MIN_LENGTH} characters.",
    )
    policy = forms.ChoiceField(required=False)
    label = forms.ChoiceField(required=False, label="Current gold label")
    status = forms.ChoiceField(
        required=False, choices=[("", "Any")] + [(key, name) for key, (name, _) in STATUSES.items()]
    )
    received_from = forms.DateField(required=False, label="Received from")
    received_to = forms.DateField(required=False, label="Received to")
    decided_from = forms.DateField(required=False, label="Decided from")
    decided_to = forms.DateField(required=False, label="Decided to")
    after = forms.CharField(required=False, widget=forms.HiddenInput)
    before = forms.CharField(required=False, widget=forms.HiddenInput)

    FILTER_FIELDS = (
        "external_id",
        "source",
        "text",
        "policy",
        "label",
        "status",
        "received_from",
        "received_to",
        "decided_from",
        "decided_to",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policies = {policy.key: policy for policy in Policy.objects.order_by("name", "key")}
        versions = (
            PolicyVersion.objects.filter(effective_at__lte=Now()).order_by("policy_id", "-number").distinct("policy_id")
        )
        self.versions = {version.policy_id: version for version in versions}
        self.fields["policy"].choices = [("", "Any")] + [(key, policy.name) for key, policy in self.policies.items()]
        label_groups: list[tuple[str, Any]] = [("", "Any")]
        for key, policy in self.policies.items():
            version = self.versions.get(policy.pk)
            if version is not None:
                options = [(f"{key}:{value}", version.label_title(value)) for value in version.label_values]
                label_groups.append((policy.name, options))
        self.fields["label"].choices = label_groups
        for name in ("received_from", "received_to", "decided_from", "decided_to"):
            self.fields[name].widget.input_type = "date"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for start, end in (("received_from", "received_to"), ("decided_from", "decided_to")):
            if data.get(start) and data.get(end) and data[start] > data[end]:
                self.add_error(end, "The end date is before the start date.")
        if data.get("after") and data.get("before"):
            raise forms.ValidationError("A page link carries either after or before, not both.")
        for name in ("after", "before"):
            if data.get(name):
                try:
                    cursor = cursor_decode(data[name])
                except Invalid as error:
                    self.add_error(name, error.detail)
                    continue
                if cursor.before != (name == "before"):
                    self.add_error(name, "This page link is damaged: start the search again from the first page.")
        return data

    def filters(self) -> ItemFilters:
        """The valid form's filters (call after is_valid())."""
        data = self.cleaned_data
        label = None
        if data.get("label"):
            key, value = data["label"].split(":", 1)
            label = (self.policies[key], value)
        return ItemFilters(
            external_id=data.get("external_id", "").strip(),
            source=data.get("source", "").strip(),
            text=data.get("text", ""),
            policy=self.policies.get(data.get("policy") or ""),
            label=label,
            status=data.get("status", ""),
            received_from=data.get("received_from"),
            received_to=data.get("received_to"),
            decided_from=data.get("decided_from"),
            decided_to=data.get("decided_to"),
        )

    def cursor(self) -> Cursor | None:
        token = self.cleaned_data.get("after") or self.cleaned_data.get("before")
        return cursor_decode(token) if token else None

    def has_filters(self) -> bool:
        return any(self.data.get(name) for name in self.FILTER_FIELDS)

    def filter_query(self) -> str:
        """The query string of the filters that were given (no page cursor): what a saved search keeps."""
        query = QueryDict(mutable=True)
        for name in self.FILTER_FIELDS:
            value = self.data.get(name)
            if value:
                query[name] = value
        return query.urlencode()
