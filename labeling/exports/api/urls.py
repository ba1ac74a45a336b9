from django.urls import path

from . import views

urlpatterns = [
    path("datasets/", views.DatasetListView.as_view(), name="api-datasets"),
    path("datasets/<slug:slug>/", views.DatasetDetailView.as_view(), name="api-dataset"),
    path("datasets/<slug:slug>/versions/", views.VersionListView.as_view(), name="api-dataset-versions"),
    path("datasets/<slug:slug>/versions/<int:version>/", views.VersionDetailView.as_view(), name="api-dataset-version"),
    path("datasets/<slug:slug>/versions/<int:version>/export", views.ExportView.as_view(), name="api-dataset-export"),
    path("datasets/<slug:slug>/versions/<int:version>/diff", views.DiffView.as_view(), name="api-dataset-diff"),
    path("datasets/<slug:slug>/builds/<int:build_id>", views.BuildDetailView.as_view(), name="api-snapshot-build"),
    path("exports/<int:job_id>", views.ExportJobView.as_view(), name="api-export-job"),
    path("exports/<int:job_id>/download", views.ExportDownloadView.as_view(), name="api-export-download"),
]
