from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from .audit import Actor
from .forms import ServiceTokenForm
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
from .services.tokens import token_create, token_revoke


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

    # Routing changes go through /lead/routing/ (reviewapp.services.queues): audited, with a volume
    # estimate before saving. The admin only reads.
    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "kind", "required_annotations", "blind_review", "sla_minutes", "is_active"]

    # Queues and their members are edited on /lead/queues/ (reviewapp.services.queues), audited.
    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


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


TOKEN_FIELDS = ("name", "prefix", "scopes", "user", "created_at", "last_used_at", "revoked_at")
TOKEN_ADD_FIELDS = ("name", "scopes", "user")  # no secret: token_create generates it


class ServiceTokenAddForm(ServiceTokenForm):
    """The admin's add form: the product's token form, plus what ModelAdmin expects of a form."""

    def __init__(self, *args: Any, instance: ServiceToken | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.instance = instance or ServiceToken()

    def save(self, commit: bool = True) -> ServiceToken:
        return self.instance  # ServiceTokenAdmin.save_model creates the token through the service


@admin.register(ServiceToken)
class ServiceTokenAdmin(admin.ModelAdmin):
    """Tokens are created (secret generated, shown once) and revoked here, never edited or deleted.

    The add form has no secret field: `token_create` generates the secret, stores its sha256 and
    audits the creation; the response to the add POST is a one-time page with the secret, never
    cached and never stored (the product page /tokens/ does the same for admins).
    """

    list_display = ["name", "prefix", "scopes", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = TOKEN_FIELDS
    actions = ["revoke_selected"]
    created_template = "admin/reviewapp/servicetoken/created.html"

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            return ServiceTokenAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return TOKEN_FIELDS if obj is not None else TOKEN_ADD_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return TOKEN_FIELDS if obj is not None else ()

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a token's scopes and owner are fixed: revoke it and create another

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoked, never deleted: the audit log and ingest jobs refer to it

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        token, secret = token_create(
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            user=form.cleaned_data["user"],
            actor=Actor.of(request.user),
        )
        # The admin goes on with `obj` (its log entry, the response): make it the stored token.
        for field in ServiceToken._meta.concrete_fields:
            setattr(obj, field.attname, getattr(token, field.attname))
        obj._state.adding, obj._state.db = False, token._state.db
        request.reviewapp_token_secret = secret  # type: ignore[attr-defined]  # read by response_add only

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: str | None = None) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Token {obj.name} created",
            "token": obj,
            "secret": getattr(request, "reviewapp_token_secret", ""),
        }
        response = TemplateResponse(request, self.created_template, context)
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke the selected tokens")
    def revoke_selected(self, request: HttpRequest, queryset: Any) -> None:
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True):
            token_revoke(token_id=token.pk, actor=Actor.of(request.user))
            revoked += 1
        self.message_user(request, f"{revoked} token(s) revoked.")


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
