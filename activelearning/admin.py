"""Read-only registry views for staff: every change goes through services (rounds, promotion, approval)."""

from django.contrib import admin

from .models import ModelVersion, PromotionDecision, SelectionRound, ThresholdProposal, TrainingRun


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "policy", "status", "stage", "trigger", "attempts", "created_at", "finished_at"]
    list_filter = ["status", "policy", "trigger"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["pk", "policy", "number", "status", "encoder", "n_train", "created_at", "promoted_at"]
    list_filter = ["status", "policy", "encoder"]


@admin.register(PromotionDecision)
class PromotionDecisionAdmin(ReadOnlyAdmin):
    list_display = ["challenger", "champion", "outcome", "created_at"]
    list_filter = ["outcome", "policy"]


@admin.register(SelectionRound)
class SelectionRoundAdmin(ReadOnlyAdmin):
    list_display = ["pk", "policy", "strategy", "budget", "tasks_created", "queue", "created_at"]


@admin.register(ThresholdProposal)
class ThresholdProposalAdmin(ReadOnlyAdmin):
    list_display = ["pk", "model_name", "auto_clear", "auto_action", "status", "created_at"]
    list_filter = ["status", "policy"]
