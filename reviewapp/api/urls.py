from django.urls import include, path

from activelearning import api as al_api

from . import appeals, ingest_jobs, tasks, views

urlpatterns = [
    path("decisions", views.DecisionsView.as_view(), name="api-decisions"),
    path("ingest-jobs", ingest_jobs.IngestJobsView.as_view(), name="api-ingest-jobs"),
    path("ingest-jobs/<int:ingest_job_id>", ingest_jobs.IngestJobDetailView.as_view(), name="api-ingest-job"),
    path("appeals", appeals.AppealsView.as_view(), name="api-appeals"),
    path("queues/<int:queue_id>/claim", tasks.QueueClaimView.as_view(), name="api-queue-claim"),
    path("tasks/<int:task_id>/annotations", tasks.TaskAnnotationsView.as_view(), name="api-task-annotations"),
    path("tasks/<int:task_id>/lease", tasks.TaskLeaseView.as_view(), name="api-task-lease"),
    path("tasks/<int:task_id>/release", tasks.TaskReleaseView.as_view(), name="api-task-release"),
    path("tasks/<int:task_id>/escalate", tasks.TaskEscalateView.as_view(), name="api-task-escalate"),
    # Active learning: model registry, rounds, threshold proposals (activelearning/api.py).
    path("models", al_api.ModelsView.as_view(), name="api-models"),
    path("models/<int:model_id>", al_api.ModelDetailView.as_view(), name="api-model-detail"),
    path("rounds", al_api.RoundsView.as_view(), name="api-rounds"),
    path("rounds/<int:run_id>", al_api.RunDetailView.as_view(), name="api-round-detail"),
    path("thresholds/<int:proposal_id>/approve", al_api.ProposalApproveView.as_view(), name="api-threshold-approve"),
    path("thresholds/<int:proposal_id>/reject", al_api.ProposalRejectView.as_view(), name="api-threshold-reject"),
    path("", include("labeling.exports.api.urls")),  # datasets/, exports/
]
