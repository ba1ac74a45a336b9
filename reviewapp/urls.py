"""The reviewer workspace: home, a queue's work page and the task/annotation actions it posts to."""

from django.urls import path

from . import feedback_views, item_views, theme, token_views, views

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
    path("items/<int:item_id>/", item_views.item_detail, name="item-detail"),
    path("items/<int:item_id>/audit.jsonl", views.item_audit_export, name="item-audit-export"),
    path("items/<int:item_id>/comments/", feedback_views.item_comments_page, name="item-comments"),
    path("items/<int:item_id>/comments/new", feedback_views.item_comment_create_view, name="item-comment-create"),
    path("outcomes/", feedback_views.outcomes_page, name="outcomes"),
    path("notifications/", feedback_views.notifications_page, name="notifications"),
    path("notifications/read", feedback_views.notifications_read, name="notifications-read"),
    path("notifications/unread", feedback_views.notifications_unread, name="notifications-unread"),
    path("tokens/", token_views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke", token_views.token_revoke_view, name="token-revoke"),
]
