"""The review workflow's REST routes (mounted under /api/v1/ by config/api_urls.py)."""

from django.urls import path

from . import appeals, bulk, feedback, ingest_jobs, items, people, queues, tasks, views

urlpatterns = [
    path("decisions", views.DecisionsView.as_view(), name="api-decisions"),
    path("ingest-jobs", ingest_jobs.IngestJobsView.as_view(), name="api-ingest-jobs"),
    path("ingest-jobs/<int:ingest_job_id>", ingest_jobs.IngestJobDetailView.as_view(), name="api-ingest-job"),
    path("appeals", appeals.AppealsView.as_view(), name="api-appeals"),
    path("items", items.ItemLookupView.as_view(), name="api-items"),
    path("queues", queues.QueuesView.as_view(), name="api-queues"),
    path("queues/<int:queue_id>", queues.QueueDetailView.as_view(), name="api-queue"),
    path("queues/<int:queue_id>/members", queues.QueueMembersView.as_view(), name="api-queue-members"),
    path(
        "queues/<int:queue_id>/members/remove", queues.QueueMemberRemoveView.as_view(), name="api-queue-member-remove"
    ),
    path("routing-rules", queues.RoutingRulesView.as_view(), name="api-routing-rules"),
    path("routing-rules/estimate", queues.RoutingEstimateView.as_view(), name="api-routing-estimate"),
    path("routing-rules/<int:routing_rule_id>", queues.RoutingRuleDetailView.as_view(), name="api-routing-rule"),
    path("items/bulk", bulk.ItemsBulkView.as_view(), name="api-items-bulk"),
    path("items/<int:item_id>/comments", feedback.ItemCommentsView.as_view(), name="api-item-comments"),
    path("outcomes", feedback.OutcomesView.as_view(), name="api-outcomes"),
    path("notifications", feedback.NotificationsView.as_view(), name="api-notifications"),
    path("notifications/read", feedback.NotificationsReadView.as_view(), name="api-notifications-read"),
    path("queues/<int:queue_id>/claim", tasks.QueueClaimView.as_view(), name="api-queue-claim"),
    path("tasks/<int:task_id>/annotations", tasks.TaskAnnotationsView.as_view(), name="api-task-annotations"),
    path("tasks/<int:task_id>/lease", tasks.TaskLeaseView.as_view(), name="api-task-lease"),
    path("tasks/<int:task_id>/release", tasks.TaskReleaseView.as_view(), name="api-task-release"),
    path("tasks/<int:task_id>/escalate", tasks.TaskEscalateView.as_view(), name="api-task-escalate"),
    path("queues/<int:queue_id>/onboarding", people.QueueOnboardingView.as_view(), name="api-queue-onboarding"),
    path(
        "queues/<int:queue_id>/onboarding/answers",
        people.OnboardingAnswersView.as_view(),
        name="api-queue-onboarding-answers",
    ),
    path("reviewers/<int:user_id>/pause", people.ReviewerPauseView.as_view(), name="api-reviewer-pause"),
    path("reviewers/<int:user_id>/resume", people.ReviewerResumeView.as_view(), name="api-reviewer-resume"),
]
