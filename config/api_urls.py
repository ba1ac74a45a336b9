"""The one API router: /api/v1/ is the union of each app's `<app>/api/urls.py`, mounted here and nowhere else.

The apps' routes do not overlap, so the order below only fixes the order of the generated schema.
"""

from django.urls import include, path

urlpatterns = [
    path("", include("reviewapp.api.urls")),  # decisions, ingest-jobs, appeals, items, queues/, tasks/
    path("", include("activelearning.api.urls")),  # models, rounds, label-error-runs, thresholds/
    path("", include("labeling.exports.api.urls")),  # datasets/, exports/
    path("", include("labeling.api.urls")),  # policies/, policy-drafts/, adjudications/
]
