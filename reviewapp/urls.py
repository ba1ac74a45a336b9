"""The reviewer workspace: home, a queue's work page and the task/annotation actions it posts to."""

from django.urls import path

from . import bulk_views, item_views, people_views, queue_views, theme, token_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("theme", theme.theme_set, name="theme-set"),
    path("queues/<int:queue_id>/work", views.queue_work, name="queue-work"),
    path("tasks/<int:task_id>/submit", views.task_submit, name="task-submit"),
    path("tasks/<int:task_id>/skip", views.task_skip, name="task-skip"),
    path("tasks/<int:task_id>/escalate", views.task_escalate_view, name="task-escalate"),
    path("tasks/<int:task_id>/heartbeat", views.task_heartbeat, name="task-heartbeat"),
    path("tasks/<int:task_id>/reveal", views.task_reveal_media, name="task-reveal"),
    path("annotations/<int:annotation_id>/undo", views.annotation_undo, name="annotation-undo"),
    path("items/", item_views.item_search_page, name="item-search"),
    path("items/saved", item_views.saved_search_create_view, name="saved-search-create"),
    path("items/saved/<int:saved_search_id>/delete", item_views.saved_search_delete_view, name="saved-search-delete"),
    path("items/bulk/", bulk_views.bulk_confirm, name="item-bulk-confirm"),
    path("items/bulk/run", bulk_views.bulk_run, name="item-bulk-run"),
    path("items/bulk/<int:bulk_action_id>/", bulk_views.bulk_result, name="item-bulk-result"),
    path("items/<int:item_id>/", item_views.item_detail, name="item-detail"),
    path("items/<int:item_id>/audit.jsonl", views.item_audit_export, name="item-audit-export"),
    path("tokens/", token_views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke", token_views.token_revoke_view, name="token-revoke"),
    path("queues/<int:queue_id>/onboarding/", people_views.onboarding_page, name="onboarding"),
    path("queues/<int:queue_id>/onboarding/answer", people_views.onboarding_answer_view, name="onboarding-answer"),
    path("lead/reviewers/", people_views.reviewer_list, name="reviewer-list"),
    path("lead/reviewers/<int:user_id>/", people_views.reviewer_detail, name="reviewer-detail"),
    path("lead/reviewers/<int:user_id>/pause", people_views.reviewer_pause, name="reviewer-pause"),
    path("lead/reviewers/<int:user_id>/resume", people_views.reviewer_resume, name="reviewer-resume"),
    path("lead/queues/", queue_views.queue_list, name="queue-list"),
    path("lead/queues/new/", queue_views.queue_new, name="queue-new"),
    path("lead/queues/<int:queue_id>/", queue_views.queue_detail, name="queue-detail"),
    path("lead/queues/<int:queue_id>/edit/", queue_views.queue_edit, name="queue-edit"),
    path("lead/queues/<int:queue_id>/members/add", queue_views.queue_member_add_view, name="queue-member-add"),
    path("lead/queues/<int:queue_id>/members/remove", queue_views.queue_member_remove_view, name="queue-member-remove"),
    path("lead/routing/", queue_views.routing_rule_list, name="routing-rule-list"),
    path("lead/routing/new/", queue_views.routing_rule_new, name="routing-rule-new"),
    path("lead/routing/<int:routing_rule_id>/", queue_views.routing_rule_edit, name="routing-rule-edit"),
]
