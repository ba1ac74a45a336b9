"""Policy drafts: /lead/drafts/…"""

from django.urls import path

from ..views import drafts

urlpatterns = [
    path("", drafts.draft_list, name="draft-list"),
    path("new/<slug:policy_key>/", drafts.draft_new, name="draft-new"),
    path("preview/", drafts.guideline_preview, name="draft-preview"),
    path("<int:draft_id>/", drafts.draft_detail, name="draft-detail"),
    path("<int:draft_id>/edit/", drafts.draft_edit, name="draft-edit"),
    path("<int:draft_id>/evaluate/", drafts.draft_evaluate, name="draft-evaluate"),
    path("<int:draft_id>/request-review/", drafts.draft_request_review, name="draft-request-review"),
    path("<int:draft_id>/publish/", drafts.draft_publish, name="draft-publish"),
]
