from __future__ import annotations

from django import forms

from labeling.models import Policy
from reviewapp.models import Queue


class ConnectionForm(forms.Form):
    name = forms.CharField(max_length=100)
    base_url = forms.URLField(label="Label Studio URL", assume_scheme="https")
    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted; leave empty to read it from an environment variable instead.",
    )
    token_env_var = forms.RegexField(
        regex=r"^[A-Z_][A-Z0-9_]*$", max_length=100, required=False, label="Token environment variable"
    )
    policy = forms.ModelChoiceField(queryset=Policy.objects.filter(is_active=True))
    queue = forms.ModelChoiceField(queryset=Queue.objects.filter(is_active=True), required=False)
    callback_base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="reviewapp URL as Label Studio reaches it",
        help_text="For webhooks; empty: annotations arrive with the scheduled pull only.",
    )

    def clean(self) -> dict:
        data = super().clean() or {}
        if not data.get("token") and not data.get("token_env_var"):
            raise forms.ValidationError("Give an API token or the environment variable that holds it.")
        return data


class SyncProjectForm(forms.Form):
    recreate = forms.BooleanField(required=False)
