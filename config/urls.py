"""Root URL configuration: each app's pages, then accounts and admin, the REST API under /api/v1/, ops endpoints.

Every app owns its routes (`<app>/urls.py`, `<app>/api/urls.py`); this module only mounts them.
"""

from django.contrib import admin
from django.contrib.auth import views as django_auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from reviewapp import auth_views, health, metrics, ops

urlpatterns = [
    path("", include("reviewapp.urls")),  # the reviewer workspace
    path("lead/datasets/", include("labeling.exports.urls")),
    path("lead/", include("labeling.urls")),
    path("models/", include("activelearning.urls")),
    path("labelstudio/", include("labeling.labelstudio.urls")),
    path("", include("labeling.llm.urls")),  # lead/llm/, lead/drafts/, lead/prelabels/
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
    path("api/v1/", include("config.api_urls")),
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

handler403 = "reviewapp.api.errors.permission_denied"  # JSON under /api/
handler404 = "reviewapp.api.errors.not_found"  # JSON under /api/
handler500 = "reviewapp.api.errors.server_error"  # JSON under /api/
