"""Policy leads' bulk actions over an item search: choose (on `/items/`), confirm, run, see the result.

The search page's bulk form GETs the confirmation page (`/items/bulk/`), which counts what the
action would take and carries a fresh request key; confirming POSTs it (`/items/bulk/run`) and
redirects to the result (`/items/bulk/<id>/`). Posting the same confirmation again (a retry, a
double click, the back button) finds the key used and shows the first result: nothing runs twice.
See `reviewapp.services.bulk` for what each action does.
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from .access import lead_required
from .audit import Actor
from .bulk_forms import BulkActionForm
from .errors import Refused
from .models import BulkAction
from .search_forms import ItemSearchForm
from .services.bulk import ACTIONS, BULK_MAX_TASKS, bulk_action_preview, bulk_action_run

NO_FILTER = "Choose at least one search filter: a bulk action never takes every item."


@require_GET
@lead_required
def bulk_confirm(request: HttpRequest) -> HttpResponse:
    search, form = ItemSearchForm(request.GET), BulkActionForm(request.GET)
    context = {"form": form, "search": search, "cap": BULK_MAX_TASKS, "preview": None}
    if search.is_valid() and form.is_valid():
        if not search.has_filters():
            context["error"] = NO_FILTER
        else:
            action = form.cleaned_data["action"]
            context["preview"] = bulk_action_preview(action=action, filters=search.filters())
            context["action_name"], context["action_meaning"] = ACTIONS[action]
            context["filter_query"] = search.filter_query()
            context["key"] = uuid.uuid4()
    else:
        context["error"] = "Correct the search or the bulk action marked below."
    return render(request, "reviewapp/bulk_confirm.html", context, status=400 if "error" in context else 200)


@require_POST
@lead_required
def bulk_run(request: HttpRequest) -> HttpResponse:
    query = request.POST.get("query", "")
    search, form = ItemSearchForm(QueryDict(query)), BulkActionForm(request.POST)
    key = _key(request.POST.get("key", ""))
    if key is None or not (search.is_valid() and form.is_valid()) or not search.has_filters():
        messages.error(request, "This confirmation is incomplete or damaged: choose the bulk action again.")
        return redirect(f"/items/?{search.filter_query() if search.is_valid() else ''}")
    try:
        run = bulk_action_run(
            key=key,
            action=form.cleaned_data["action"],
            params=form.params(),
            filters=search.filters(),
            query=search.filter_query(),
            actor=Actor.of(request.user),
        )
    except Refused as error:
        messages.error(request, error.detail)
        return redirect(f"/items/?{search.filter_query()}")
    if run.replayed:
        messages.info(request, "This bulk action was already applied (the same confirmation): nothing changed again.")
    else:
        messages.success(request, f"{ACTIONS[run.bulk.action][0]}: {run.bulk.changed} changed.")
    return redirect("item-bulk-result", bulk_action_id=run.bulk.pk)


def _key(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


@require_GET
@lead_required
def bulk_result(request: HttpRequest, bulk_action_id: int) -> HttpResponse:
    bulk = BulkAction.objects.filter(pk=bulk_action_id).first()
    if bulk is None:
        raise Http404("No bulk action has this id.")
    context = {"bulk": bulk, "action_name": ACTIONS.get(bulk.action, (bulk.action, ""))[0]}
    return render(request, "reviewapp/bulk_result.html", context)
