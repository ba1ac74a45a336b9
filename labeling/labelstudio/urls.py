from django.urls import path

from . import views

urlpatterns = [
    path("", views.connections, name="labelstudio-connections"),
    path("connections/new", views.connection_new, name="labelstudio-connection-new"),
    path("connections/<int:connection_id>/test", views.connection_test_view, name="labelstudio-test"),
    path("connections/<int:connection_id>/sync-project", views.sync_project_view, name="labelstudio-sync-project"),
    path("connections/<int:connection_id>/push", views.push_view, name="labelstudio-push"),
    path("connections/<int:connection_id>/pull", views.pull_view, name="labelstudio-pull"),
    path("webhooks/<int:connection_id>", views.webhook, name="labelstudio-webhook"),
]
