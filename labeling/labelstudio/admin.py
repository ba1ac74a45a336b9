from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from .addresses import check_base_url
from .models import Connection, ExternalReviewer, Project, PulledAnnotation, PushedTask, SyncRun


class ConnectionAdminForm(forms.ModelForm):
    """The token is entered here and stored encrypted; no field names an environment variable
    (an old `token_env_var` is shown read-only, and entering a token replaces it)."""

    base_url = forms.URLField(assume_scheme="https", label="Label Studio URL")
    callback_base_url = forms.URLField(assume_scheme="https", required=False)
    new_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave empty to keep the current token.",
    )

    class Meta:
        model = Connection
        fields = ["name", "base_url", "new_token", "callback_base_url", "policy", "queue", "is_active"]

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].rstrip("/")
        # Only a changed URL is checked here, so a connection saved before the rule can still be
        # switched off; every request re-checks the address anyway (addresses.CheckedTransport).
        if "base_url" in self.changed_data:
            try:
                check_base_url(url)
            except ValidationError as error:
                raise forms.ValidationError(error.messages) from None
        return url

    def clean(self) -> dict:
        data = super().clean() or {}
        has_token = self.instance.token_ciphertext or self.instance.token_env_var
        if not data.get("new_token") and not has_token:
            self.add_error("new_token", "Give the Label Studio API token.")
        return data

    def save(self, commit: bool = True) -> Connection:
        connection = super().save(commit=False)
        if self.cleaned_data.get("new_token"):
            connection.set_api_token(self.cleaned_data["new_token"])
        if not connection.webhook_secret_ciphertext:
            connection.new_webhook_secret()
        if commit:
            connection.save()
        return connection


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionAdminForm
    list_display = ["name", "base_url", "policy", "queue", "status", "last_pull_at", "is_active"]
    readonly_fields = [
        "token_env_var",
        "status",
        "status_detail",
        "status_changed_at",
        "last_pull_at",
        "last_webhook_at",
    ]


@admin.register(ExternalReviewer)
class ExternalReviewerAdmin(admin.ModelAdmin):
    list_display = ["server_url", "ls_user_id", "email", "reviewer", "created_at"]
    readonly_fields = ["server_url", "ls_user_id", "email", "created_at"]
    raw_id_fields = ["reviewer"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = ["connection", "ls_project_id", "policy_version", "is_current", "pull_cursor", "missing_since"]


@admin.register(PushedTask)
class PushedTaskAdmin(ReadOnlyAdmin):
    list_display = ["connection", "task", "ls_task_id", "is_live", "pushed_at"]


@admin.register(PulledAnnotation)
class PulledAnnotationAdmin(ReadOnlyAdmin):
    list_display = ["project", "ls_annotation_id", "outcome", "annotation", "ls_updated_at"]
    list_filter = ["outcome"]


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["connection", "kind", "started_at", "ok", "error", "triggered_by"]
    list_filter = ["kind", "ok"]
