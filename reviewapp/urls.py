"""URL configuration. Browser pages, then the REST API under /api/v1/, then ops endpoints."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import auth_views, health, metrics, ops, views

urlpatterns = [
    path("", views.home, name="home"),
    path("queues/<int:queue_id>/work", views.queue_work, name="queue-work"),
    path("tasks/<int:task_id>/submit", views.task_submit, name="task-submit"),
    path("tasks/<int:task_id>/skip", views.task_skip, name="task-skip"),
    path("tasks/<int:task_id>/escalate", views.task_escalate_view, name="task-escalate"),
    path("tasks/<int:task_id>/heartbeat", views.task_heartbeat, name="task-heartbeat"),
    path("tasks/<int:task_id>/reveal", views.task_reveal_media, name="task-reveal"),
    path("annotations/<int:annotation_id>/undo", views.annotation_undo, name="annotation-undo"),
    path("items/<int:item_id>/audit.jsonl", views.item_audit_export, name="item-audit-export"),
    path("lead/datasets/", include("labeling.exports.urls")),
    path("lead/", include("labeling.urls")),
    path("models/", include("activelearning.urls")),
    path("labelstudio/", include("labeling.labelstudio.urls")),
    path("accounts/login/", auth_views.RateLimitedLoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("reviewapp.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("ops/", ops.ops_dashboard, name="ops"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

handler404 = "reviewapp.api.errors.not_found"  # JSON under /api/
handler500 = "reviewapp.api.errors.server_error"  # JSON under /api/
