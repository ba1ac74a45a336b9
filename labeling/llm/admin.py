from django.contrib import admin

from .models import LLMReviewer, LLMRun


@admin.register(LLMReviewer)
class LLMReviewerAdmin(admin.ModelAdmin):
    list_display = ("name", "policy", "backend", "model_name", "is_active")
    exclude = ("api_key_ciphertext",)


@admin.register(LLMRun)
class LLMRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "reviewer", "kind", "status", "items_done", "created_at")
    readonly_fields = [f.name for f in LLMRun._meta.fields]
