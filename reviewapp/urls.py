"""URL configuration. Browser pages, then the REST API under /api/v1/, then ops endpoints."""

from django.contrib import admin
from django.contrib.auth import views as django_auth_views
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
    # Only these of django.contrib.auth.urls: the password-reset pages need outgoing mail, which this
    # deployment does not send. A person who forgot their password asks an admin, who sets a new one in
    # the admin or with `manage.py changepassword`.
    path("accounts/logout/", django_auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", django_auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "accounts/password_change/done/",
        django_auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("admin/", admin.site.urls),
    path("api/v1/", include("reviewapp.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # The split view serves its start-up script as a file; our template has no inline style (CSP).
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="reviewapp/api_docs.html"),
        name="api-docs",
    ),
    path("ops/", ops.ops_dashboard, name="ops"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

handler404 = "reviewapp.api.errors.not_found"  # JSON under /api/
handler500 = "reviewapp.api.errors.server_error"  # JSON under /api/
