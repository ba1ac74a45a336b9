"""Policy lifecycle and adjudication REST routes (mounted under /api/v1/ by config/api_urls.py)."""

from django.urls import path

from . import adjudications, policies

urlpatterns = [
    path("policies", policies.PoliciesView.as_view(), name="api-policies"),
    path("policies/<slug:policy_key>/drafts", policies.DraftsView.as_view(), name="api-policy-drafts"),
    path("policies/<slug:policy_key>/versions", policies.VersionsView.as_view(), name="api-policy-versions"),
    path("policies/<slug:policy_key>/diff", policies.DiffView.as_view(), name="api-policy-diff"),
    path("policy-drafts/<int:draft_id>", policies.DraftView.as_view(), name="api-policy-draft"),
    path(
        "policy-drafts/<int:draft_id>/request-review",
        policies.DraftRequestReviewView.as_view(),
        name="api-policy-draft-request-review",
    ),
    path("policy-drafts/<int:draft_id>/publish", policies.DraftPublishView.as_view(), name="api-policy-draft-publish"),
    path("adjudications", adjudications.AdjudicationListView.as_view(), name="api-adjudications"),
    path(
        "adjudications/<int:adjudication_id>", adjudications.AdjudicationDetailView.as_view(), name="api-adjudication"
    ),
    path(
        "adjudications/<int:adjudication_id>/decide",
        adjudications.AdjudicationDecideView.as_view(),
        name="api-adjudication-decide",
    ),
    path(
        "adjudications/<int:adjudication_id>/send-back",
        adjudications.AdjudicationSendBackView.as_view(),
        name="api-adjudication-send-back",
    ),
]
