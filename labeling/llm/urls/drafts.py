"""Policy drafts: /lead/drafts/…"""

from django.urls import path

from ..views import drafts

urlpatterns = [
    path("", drafts.draft_list, name="draft-list"),
    path("new/", drafts.draft_new, name="draft-new"),
    path("preview/", drafts.guideline_preview, name="draft-preview"),
    path("<int:pk>/", drafts.draft_detail, name="draft-detail"),
    path("<int:pk>/edit/", drafts.draft_edit, name="draft-edit"),
    path("<int:pk>/evaluate/", drafts.draft_evaluate, name="draft-evaluate"),
    path("<int:pk>/publish/", drafts.draft_publish, name="draft-publish"),
]
