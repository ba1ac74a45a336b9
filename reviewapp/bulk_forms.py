"""The bulk action form of the item search (`/items/bulk/`): which action, and what it needs.

A value it cannot use is a field error beside the field, never a server error.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User

from .errors import Invalid
from .models import Queue, QueueKind
from .services.bulk import (
    ACTIONS,
    ASSIGN,
    MAX_NOTE_CHARS,
    MOVE,
    PRIORITY_LIMIT,
    RELABEL,
    REPRIORITISE,
    BulkParams,
    bulk_params_check,
)

# Which field each action needs, so an error lands beside it.
NEEDS = {MOVE: "queue", RELABEL: "queue", ASSIGN: "reviewer", REPRIORITISE: "priority"}


class BulkActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(key, name) for key, (name, _) in ACTIONS.items()], label="Bulk action")
    queue = forms.ModelChoiceField(
        queryset=Queue.objects.filter(is_active=True).exclude(kind=QueueKind.ADJUDICATION).order_by("name"),
        to_field_name="slug",
        required=False,
        label="Queue",
        help_text="For move and relabel: where the tasks go.",
    )
    reviewer = forms.CharField(
        required=False, max_length=150, label="Reviewer", help_text="For assign: the reviewer's username."
    )
    priority = forms.FloatField(
        required=False,
        min_value=-PRIORITY_LIMIT,
        max_value=PRIORITY_LIMIT,
        label="Priority",
        help_text="For set priority: higher is served first.",
    )
    note = forms.CharField(
        required=False,
        max_length=MAX_NOTE_CHARS,
        label="Note",
        help_text="For assign: shown to the reviewer with the task.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean_reviewer(self) -> User | None:
        username = self.cleaned_data.get("reviewer", "").strip()
        if not username:
            return None
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"No active user is named “{username}”.")
        return user

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        action = data.get("action")
        if action and not self.errors:
            try:
                bulk_params_check(action=action, params=self.params())
            except Invalid as error:
                self.add_error(NEEDS.get(action), error.detail)
        return data

    def params(self) -> BulkParams:
        """What the action needs, from the cleaned data (call after is_valid())."""
        data = self.cleaned_data
        action = data.get("action")
        return BulkParams(
            queue=data.get("queue") if action in (MOVE, RELABEL) else None,
            reviewer=data.get("reviewer") if action == ASSIGN else None,
            priority=data.get("priority") if action == REPRIORITISE else None,
            note=(data.get("note") or "").strip() if action == ASSIGN else "",
        )
