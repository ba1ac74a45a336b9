from __future__ import annotations

from django import forms

from labeling.models import Policy
from reviewapp.models import Queue


class ConnectionForm(forms.Form):
    """A lead's new connection. It takes the token itself, never the name of a variable to read it
    from: a name would let the page make the server send any of its environment (secret key,
    database URL) to the URL typed here."""

    name = forms.CharField(max_length=100)
    base_url = forms.URLField(
        label="Label Studio URL",
        assume_scheme="https",
        help_text="https, on a public address; an operator can allow an internal server.",
    )
    token = forms.CharField(
        label="API token", widget=forms.PasswordInput(render_value=False), help_text="Stored encrypted."
    )
    policy = forms.ModelChoiceField(queryset=Policy.objects.filter(is_active=True))
    queue = forms.ModelChoiceField(queryset=Queue.objects.filter(is_active=True), required=False)
    callback_base_url = forms.URLField(
        required=False,
        assume_scheme="https",
        label="reviewapp URL as Label Studio reaches it",
        help_text="For webhooks; empty: annotations arrive with the scheduled pull only.",
    )


class SyncProjectForm(forms.Form):
    recreate = forms.BooleanField(required=False)
