from django.urls import path

from ..views import reviewers as views

urlpatterns = [
    path("", views.reviewer_list, name="reviewers"),
    path("new/", views.reviewer_new, name="reviewer-new"),
    path("<int:reviewer_id>/", views.reviewer_detail, name="reviewer"),
    path("<int:reviewer_id>/edit/", views.reviewer_edit, name="reviewer-edit"),
    path("<int:reviewer_id>/runs/", views.run_start, name="run-start"),
    path("runs/<int:llm_run_id>/", views.run_detail, name="run"),
    path("runs/<int:llm_run_id>/cancel/", views.run_cancel, name="run-cancel"),
]
