"""The review workflow's REST routes (mounted under /api/v1/ by config/api_urls.py)."""

from django.urls import path

from . import appeals, feedback, ingest_jobs, items, tasks, views

urlpatterns = [
    path("decisions", views.DecisionsView.as_view(), name="api-decisions"),
    path("ingest-jobs", ingest_jobs.IngestJobsView.as_view(), name="api-ingest-jobs"),
    path("ingest-jobs/<int:ingest_job_id>", ingest_jobs.IngestJobDetailView.as_view(), name="api-ingest-job"),
    path("appeals", appeals.AppealsView.as_view(), name="api-appeals"),
    path("items", items.ItemLookupView.as_view(), name="api-items"),
    path("items/<int:item_id>/comments", feedback.ItemCommentsView.as_view(), name="api-item-comments"),
    path("outcomes", feedback.OutcomesView.as_view(), name="api-outcomes"),
    path("notifications", feedback.NotificationsView.as_view(), name="api-notifications"),
    path("notifications/read", feedback.NotificationsReadView.as_view(), name="api-notifications-read"),
    path("queues/<int:queue_id>/claim", tasks.QueueClaimView.as_view(), name="api-queue-claim"),
    path("tasks/<int:task_id>/annotations", tasks.TaskAnnotationsView.as_view(), name="api-task-annotations"),
    path("tasks/<int:task_id>/lease", tasks.TaskLeaseView.as_view(), name="api-task-lease"),
    path("tasks/<int:task_id>/release", tasks.TaskReleaseView.as_view(), name="api-task-release"),
    path("tasks/<int:task_id>/escalate", tasks.TaskEscalateView.as_view(), name="api-task-escalate"),
]
