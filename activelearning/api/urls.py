"""Active learning's REST routes: models, rounds, label-error runs, thresholds (mounted by config/api_urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("models", views.ModelsView.as_view(), name="api-models"),
    path("models/<int:model_id>", views.ModelDetailView.as_view(), name="api-model-detail"),
    path("models/<int:model_id>/deploy", views.ModelDeployView.as_view(), name="api-model-deploy"),
    path("models/<slug:policy_key>/rollback", views.ModelRollbackView.as_view(), name="api-model-rollback"),
    path("online-metrics", views.OnlineMetricsView.as_view(), name="api-online-metrics"),
    path("models/<int:model_id>/artifact", views.ModelArtifactView.as_view(), name="api-model-artifact"),
    path("models/<slug:policy_key>/predict", views.PredictView.as_view(), name="api-model-predict"),
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
