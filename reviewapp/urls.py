"""The reviewer workspace: home, a queue's work page and the task/annotation actions it posts to."""

from django.urls import path

from . import bulk_views, item_views, theme, token_views, views

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
]
