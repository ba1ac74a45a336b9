from django.urls import path

from . import policy_views, views

urlpatterns = [
    path("adjudications/", views.adjudication_list, name="adjudication-list"),
    path("adjudications/confirm", views.adjudication_bulk_confirm, name="adjudication-bulk-confirm"),
    path("adjudications/<int:pk>/", views.adjudication_detail, name="adjudication-detail"),
    path("adjudications/<int:pk>/decide", views.adjudication_decide_view, name="adjudication-decide"),
    path("adjudications/<int:pk>/send-back", views.adjudication_send_back_view, name="adjudication-send-back"),
    path("appeals/", views.appeal_list, name="appeal-list"),
    path("appeals/queue", views.appeals_queue_create, name="appeals-queue-create"),
    path("gold/<int:item_id>/<int:policy_id>/", views.gold_history, name="gold-history"),
    path("quality/", views.quality, name="quality"),
    path("policies/", policy_views.policy_list, name="policy-list"),
    path("policies/new/", policy_views.policy_new, name="policy-new"),
    path("policies/<slug:policy_key>/", policy_views.policy_detail, name="policy-detail"),
    path("policies/<slug:policy_key>/diff", policy_views.policy_diff_view, name="policy-diff"),
    path("quality/refresh", views.reliability_refresh_view, name="quality-refresh"),
]
