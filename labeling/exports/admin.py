"""Admin: webhook endpoints are managed here; datasets, versions and jobs are shown read-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from .models import Dataset, DatasetSnapshot, ExportJob, SnapshotBuild, WebhookDelivery, WebhookEndpoint, WebhookEvent
from .webhooks import check_webhook_url


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "group_by", "train_percent", "dev_percent", "created_by_label", "created_at"]
    search_fields = ["slug", "name"]
    # What decides an item's split never changes (see Dataset); create datasets on the lead pages or the API.
    readonly_fields = ["slug", "filters", "group_by", "train_percent", "dev_percent", "split_salt", "created_by"]
    readonly_fields += ["created_by_label", "created_at"]

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(DatasetSnapshot)
class DatasetSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["dataset", "version", "row_count", "content_hash", "created_by_label", "created_at"]
    list_filter = ["dataset"]


@admin.register(SnapshotBuild)
class SnapshotBuildAdmin(ReadOnlyAdmin):
    list_display = ["pk", "dataset", "status", "rows_expected", "snapshot", "created_at", "finished_at"]
    list_filter = ["status"]


@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = ["pk", "snapshot", "format", "split", "redact_pii", "status", "rows_done", "rows_total"]
    list_filter = ["status", "format"]


class WebhookEndpointForm(forms.ModelForm):
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "events", "is_active", "description", "secret"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            check_webhook_url(url)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        return url


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "events", "is_active", "description", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["pk", "endpoint", "event", "status", "attempts", "last_status_code", "created_at", "delivered_at"]
    list_filter = ["status", "event"]
    search_fields = ["event_id"]
