"""URLs of LLM reviewer pages; each topic's module lists its own."""

from django.urls import include, path

app_name = "llm"

urlpatterns = [
    path("lead/llm/", include("labeling.llm.urls.reviewers")),
    path("lead/drafts/", include("labeling.llm.urls.drafts")),
    path("lead/prelabels/", include("labeling.llm.urls.prelabels")),
]
