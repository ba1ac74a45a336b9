"""POST /api/v1/items/bulk: a policy lead's bulk action over an item search (as on `/items/`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..bulk_forms import BulkActionForm
from ..search_forms import ItemSearchForm
from ..services.bulk import ACTIONS, BULK_MAX_TASKS, bulk_action_preview, bulk_action_run
from .auth import ActsForLead, token_actor
from .items import SEARCH_DESCRIPTIONS
from .serializers import ErrorSerializer

ACTION_HELP = "; ".join(f"`{key}`: {meaning}" for key, (_, meaning) in ACTIONS.items())
FILTER_HELP = (
    "The search, with the parameters of GET /api/v1/items (at least one; no page cursor): "
    + "; ".join(f"`{name}`: {text}" for name, text in SEARCH_DESCRIPTIONS.items() if name not in ("after", "before"))
    + "; `source`, `external_id`: exact."
)


class BulkActionIn(serializers.Serializer):
    key = serializers.UUIDField(help_text="Chosen by the client; a request with a key already used changes nothing.")
    action = serializers.ChoiceField(choices=list(ACTIONS), help_text=ACTION_HELP)
    filters = serializers.DictField(child=serializers.CharField(allow_blank=True), help_text=FILTER_HELP)
    queue = serializers.SlugField(required=False, help_text="move, relabel: the slug of the queue to send them to.")
    reviewer = serializers.CharField(required=False, help_text="assign: the reviewer's username.")
    priority = serializers.FloatField(required=False, help_text="reprioritise: the new priority (higher first).")
    note = serializers.CharField(required=False, allow_blank=True, help_text="assign: shown to the reviewer.")
    dry_run = serializers.BooleanField(
        required=False, default=False, help_text="Only count what the action would take (the confirmation step)."
    )


class SkippedOut(serializers.Serializer):
    item = serializers.IntegerField()
    external_id = serializers.CharField()
    task = serializers.IntegerField(required=False, help_text="The task left as it was (task actions).")
    gold = serializers.IntegerField(required=False, help_text="The gold label not sent (relabel).")
    why = serializers.CharField()


class BulkActionOut(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.UUIDField()
    action = serializers.CharField()
    params = serializers.DictField()
    query = serializers.CharField(help_text="The search, as a query string.")
    matched = serializers.IntegerField(help_text="Tasks (gold labels for relabel) the search selected.")
    changed = serializers.IntegerField()
    skipped = SkippedOut(many=True, help_text="Those left as they were, and why.")
    created_at = serializers.DateTimeField()
    replayed = serializers.BooleanField(help_text="True when the key had been used: this is the first result.")


class BulkPreviewOut(serializers.Serializer):
    action = serializers.CharField()
    matched = serializers.IntegerField(help_text=f"What the action would take now, at most {BULK_MAX_TASKS}.")
    items = serializers.IntegerField()
    over_cap = serializers.BooleanField(
        help_text=f"The search selects more than {BULK_MAX_TASKS}: it would be refused."
    )


class ItemsBulkView(APIView):
    permission_classes = [ActsForLead]
    required_scope = "items:write"

    @extend_schema(
        operation_id="items_bulk",
        summary="Run a bulk action over an item search (idempotent by key)",
        description=(
            "Requeue, move, send to relabel, assign or reprioritise the open tasks (for relabel: the current "
            f"gold labels) of the items matching `filters`, at most {BULK_MAX_TASKS} at once (a larger "
            "selection is refused: narrow it). Each change is audited on its item as `bulk.<action>`. "
            "201 with the result; 200 with the first result when `key` was used before (nothing changes "
            "again); with `dry_run`, 200 with the count only. A policy lead's session or personal token "
            "with the `items:write` scope."
        ),
        request=BulkActionIn,
        responses={
            201: BulkActionOut,
            200: PolymorphicProxySerializer(
                component_name="BulkActionOrPreview",
                serializers=[BulkActionOut, BulkPreviewOut],
                resource_type_field_name=None,
            ),
            400: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def post(self, request: Request) -> Response:
        data = BulkActionIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        search = ItemSearchForm({k: v for k, v in values["filters"].items() if k in ItemSearchForm.FILTER_FIELDS})
        if not search.is_valid():
            raise ValidationError({"filters": _messages(search.errors)})
        if not search.has_filters():
            raise ValidationError(
                {"filters": ["Give at least one search filter: a bulk action never takes every item."]}
            )
        form = BulkActionForm(
            {k: v for k, v in values.items() if k in ("action", "queue", "reviewer", "priority", "note")}
        )
        if not form.is_valid():
            raise ValidationError(_messages(form.errors))
        if values["dry_run"]:
            preview = bulk_action_preview(action=values["action"], filters=search.filters())
            return Response(BulkPreviewOut(preview).data)
        run = bulk_action_run(
            key=values["key"],
            action=values["action"],
            params=form.params(),
            filters=search.filters(),
            query=search.filter_query(),
            actor=token_actor(request),
        )
        run.bulk.replayed = run.replayed  # type: ignore[attr-defined]
        code = status.HTTP_200_OK if run.replayed else status.HTTP_201_CREATED
        return Response(BulkActionOut(run.bulk).data, status=code)


def _messages(errors: Any) -> dict[str, list[str]]:
    return {name: [str(message) for message in messages] for name, messages in errors.items()}
