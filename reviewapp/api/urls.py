from django.urls import path

from . import appeals, tasks, views

urlpatterns = [
    path("decisions", views.DecisionsView.as_view(), name="api-decisions"),
    path("appeals", appeals.AppealsView.as_view(), name="api-appeals"),
    path("queues/<int:queue_id>/claim", tasks.QueueClaimView.as_view(), name="api-queue-claim"),
    path("tasks/<int:task_id>/annotations", tasks.TaskAnnotationsView.as_view(), name="api-task-annotations"),
    path("tasks/<int:task_id>/lease", tasks.TaskLeaseView.as_view(), name="api-task-lease"),
    path("tasks/<int:task_id>/release", tasks.TaskReleaseView.as_view(), name="api-task-release"),
    path("tasks/<int:task_id>/escalate", tasks.TaskEscalateView.as_view(), name="api-task-escalate"),
]
