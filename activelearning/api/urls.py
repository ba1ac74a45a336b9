"""Active learning's REST routes: models, rounds, label-error runs, thresholds (mounted by config/api_urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("models", views.ModelsView.as_view(), name="api-models"),
    path("models/<int:model_id>", views.ModelDetailView.as_view(), name="api-model-detail"),
    path("rounds", views.RoundsView.as_view(), name="api-rounds"),
    path("rounds/<int:run_id>", views.RunDetailView.as_view(), name="api-round-detail"),
    path("thresholds", views.ProposalsView.as_view(), name="api-thresholds"),
    path("drift", views.DriftView.as_view(), name="api-drift"),
    path(
        "label-error-runs/<int:label_error_run_id>",
        views.LabelErrorRunDetailView.as_view(),
        name="api-label-error-run-detail",
    ),
    path("thresholds/<int:proposal_id>/approve", views.ProposalApproveView.as_view(), name="api-threshold-approve"),
    path("thresholds/<int:proposal_id>/reject", views.ProposalRejectView.as_view(), name="api-threshold-reject"),
]
