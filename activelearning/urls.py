from django.urls import path

from . import views

urlpatterns = [
    path("", views.models_page, name="al-models"),
    path("<slug:policy_key>/online", views.online_page, name="al-online"),
    path("rounds/start", views.round_start, name="al-round-start"),
    path("rounds/<int:run_id>/", views.run_page, name="al-run"),
    path("rounds/<int:run_id>/cancel", views.run_cancel, name="al-run-cancel"),
    path("label-errors/", views.label_error_runs_page, name="al-label-error-runs"),
    path("label-errors/<int:label_error_run_id>/", views.label_error_run_page, name="al-label-error-run"),
    path("label-errors/<int:label_error_run_id>/send", views.label_error_send, name="al-label-error-send"),
    path("proposals/<int:proposal_id>/approve", views.proposal_approve, name="al-proposal-approve"),
    path("proposals/<int:proposal_id>/reject", views.proposal_reject, name="al-proposal-reject"),
    path("versions/<int:model_id>/deploy", views.version_deploy, name="al-version-deploy"),
    path("policies/<slug:policy_key>/rollback", views.policy_rollback, name="al-policy-rollback"),
]
