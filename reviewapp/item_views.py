"""Policy leads' item pages: search with saved filters (`/items/`) and one item's record (`/items/<id>/`).

Both are lead-only: the item page names reviewers and their answers and shows which tasks were
honeypots, which a reviewer must never see. Plain GET forms; saving and deleting a saved search
are POSTs that redirect back to the search.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from labeling.models import GoldLabel

from .access import lead_required
from .bulk_forms import BulkActionForm
from .errors import Refused
from .models import SavedSearch
from .projection import item_projection
from .search_forms import ItemSearchForm
from .services.bulk import BULK_MAX_TASKS
from .services.case_history import author_case_history
from .services.items import item_record
from .services.search import STATUSES, item_search, saved_search_create, saved_search_delete


@require_GET
@lead_required
def item_search_page(request: HttpRequest) -> HttpResponse:
    form = ItemSearchForm(request.GET)
    page = None
    if form.is_valid():
        page = item_search(filters=form.filters(), cursor=form.cursor())
    context = {
        "form": form,
        "page": page,
        "filter_query": form.filter_query() if form.is_valid() else "",
        "saved_searches": list(SavedSearch.objects.filter(user=request.user)),
        "statuses": [(name, meaning) for name, meaning in STATUSES.values()],
        "first_page": not (request.GET.get("after") or request.GET.get("before")),
        "bulk_form": BulkActionForm(),
        "bulk_cap": BULK_MAX_TASKS,
        "filter_pairs": list(QueryDict(form.filter_query()).items()) if form.is_valid() else [],
    }
    return render(request, "reviewapp/item_search.html", context, status=200 if form.is_valid() else 400)


@require_POST
@lead_required
def saved_search_create_view(request: HttpRequest) -> HttpResponse:
    form = ItemSearchForm(QueryDict(request.POST.get("query", "")))
    name = request.POST.get("name", "").strip()
    if not name or len(name) > 100:
        messages.error(request, "Give the saved search a name of 1 to 100 characters.")
    elif not form.is_valid():
        messages.error(request, "Only a valid search can be saved: correct the filters first.")
    elif not form.has_filters():
        messages.error(request, "Choose at least one filter to save.")
    else:
        try:
            saved_search_create(user=request.user, name=name, query=form.filter_query())
        except Refused as error:
            messages.error(request, error.detail)
        else:
            messages.success(request, f"Saved search “{name}” saved.")
    return redirect(_search_url(form.filter_query() if form.is_valid() else ""))


@require_POST
@lead_required
def saved_search_delete_view(request: HttpRequest, saved_search_id: int) -> HttpResponse:
    try:
        saved_search_delete(user=request.user, saved_search_id=saved_search_id)
    except Refused as error:
        raise Http404(error.detail) from None
    messages.success(request, "Saved search deleted.")
    return redirect("item-search")


def _search_url(query: str) -> str:
    url = reverse("item-search")
    return f"{url}?{query}" if query else url


@require_GET
@lead_required
def item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    record = item_record(item_id=item_id)
    if record is None:
        raise Http404("No content item has this id.")
    context = {
        "record": record,
        "view": item_projection(item=record.item),
        "gold_policies": _gold_policies(record.gold_labels),
        "case_history": author_case_history(item=record.item),
    }
    return render(request, "reviewapp/item_detail.html", context)


def _gold_policies(gold_labels: list[GoldLabel]) -> list[GoldLabel]:
    """The current gold label per policy (the list is newest version first within a policy)."""
    seen: set[int] = set()
    current = []
    for label in gold_labels:
        if label.policy_id not in seen:
            seen.add(label.policy_id)
            current.append(label)
    return current
