"""Lead pages for gold datasets, under /lead/datasets/."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.dataset_list, name="dataset-list"),
    path("new", views.dataset_new, name="dataset-new"),
    path("exports/<int:job_id>/", views.export_status, name="dataset-export-status"),
    path("exports/<int:job_id>/file", views.export_download, name="dataset-export-file"),
    path("<slug:slug>/", views.dataset_detail, name="dataset-detail"),
    path("<slug:slug>/build", views.version_build, name="dataset-version-build"),
    path("<slug:slug>/builds/<int:build_id>/", views.build_status, name="dataset-build-status"),
    path("<slug:slug>/v<int:version>/", views.version_detail, name="dataset-version"),
    path("<slug:slug>/v<int:version>/download", views.version_download, name="dataset-version-download"),
    path("<slug:slug>/v<int:version>/exports", views.export_start, name="dataset-export-start"),
]
