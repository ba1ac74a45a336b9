from django.contrib import admin

from .audit import Actor
from .models import (
    AuditEvent,
    ContentItem,
    IngestChunk,
    IngestJob,
    ModelDecision,
    Queue,
    ReviewTask,
    RoutingRule,
    ServiceToken,
)
from .services.ingest_jobs import ingest_job_retry


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "external_id", "modality", "reach", "created_at"]
    list_filter = ["modality", "source"]
    search_fields = ["external_id"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # content is evidence: never edited


@admin.register(ModelDecision)
class ModelDecisionAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "policy", "model_name", "model_version", "score", "routing_outcome", "audit_sampled"]
    list_filter = ["routing_outcome", "audit_sampled", "policy"]
    raw_id_fields = ["item"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = [
        "policy",
        "model_name",
        "auto_clear",
        "auto_action",
        "audit_rate_clear",
        "audit_rate_action",
        "queue",
    ]
    list_filter = ["policy"]


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "required_annotations", "blind_review", "sla_minutes", "is_active"]
    filter_horizontal = ["members"]


@admin.register(ReviewTask)
class ReviewTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "policy", "queue", "reason", "priority", "status", "due_at", "leased_by"]
    list_filter = ["status", "reason", "queue"]
    raw_id_fields = ["item", "decision"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # transitions go through services so they are audited


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "actor_label", "action", "object_type", "object_id", "item_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["object_id", "actor_label"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(ServiceToken)
class ServiceTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "scopes", "user", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    exclude = []


class IngestChunkInline(admin.TabularInline):
    model = IngestChunk
    readonly_fields = (
        "number",
        "status",
        "attempts",
        "enqueued_at",
        "applied_at",
        "created",
        "duplicate",
        "last_error",
    )
    fields = readonly_fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(IngestJob)
class IngestJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "status",
        "actor_label",
        "rows_received",
        "rows_created",
        "rows_duplicate",
        "rows_rejected",
        "chunks_done",
        "chunks_failed",
        "chunks_total",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status"]
    inlines = [IngestChunkInline]
    actions = ["retry_failed_chunks"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False  # jobs move through services only

    @admin.action(description="Send the failed chunks of the selected jobs again")
    def retry_failed_chunks(self, request, queryset):  # type: ignore[no-untyped-def]
        retried = sum(ingest_job_retry(job_id=job.pk, actor=Actor.of(request.user)) for job in queryset)
        self.message_user(request, f"{retried} chunk(s) sent again.")
