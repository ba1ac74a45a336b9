"""GET /api/v1/items: what became of an item, for the upstream that sent it; or a page of items.

With exactly `source` and `external_id`: that one item and its history (the lookup). With any
search parameter (`text`, `policy`, `label`, `status`, the date bounds, or a page cursor
`after`/`before`): a keyset page of matching items, filtered as the lead search page filters
(`reviewapp.services.search`), `source` and `external_id` then being filters too.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Modality, RoutingOutcome, TaskStatus
from ..search_forms import ItemSearchForm
from ..services.items import item_history
from ..services.search import STATUSES, ItemRow, item_search
from .auth import HasScope
from .serializers import ErrorSerializer

# Listing every item of a source would be an export by another name: without a search parameter the
# lookup is by exact upstream identity only, and a request without `external_id` is refused with this.
EXTERNAL_ID_REQUIRED = (
    "external_id is required: items are looked up by their exact (source, external_id); "
    "listing a source's items in full is not offered (narrow it with a search parameter, or use dataset exports)."
)
STATUS_HELP = "; ".join(f"{key}: {meaning}" for key, (_, meaning) in STATUSES.items())
# Any filter beyond the exact identity (source, external_id) makes the request a search; so do the cursors.
SEARCH_PARAMETERS = (
    *(name for name in ItemSearchForm.FILTER_FIELDS if name not in ("external_id", "source")),
    "after",
    "before",
)


class ItemQuery(serializers.Serializer):
    source = serializers.CharField(max_length=100, error_messages={"required": "source is required, with external_id."})
    external_id = serializers.CharField(max_length=255, error_messages={"required": EXTERNAL_ID_REQUIRED})


class UpstreamDecisionOut(serializers.Serializer):
    id = serializers.IntegerField()
    policy = serializers.CharField(source="policy.key")
    policy_version = serializers.IntegerField(source="policy_version.number", allow_null=True)
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    score = serializers.FloatField()
    predicted_label = serializers.CharField()
    routing_outcome = serializers.ChoiceField(choices=RoutingOutcome.choices)
    audit_sampled = serializers.BooleanField()
    received_at = serializers.DateTimeField()


class UpstreamTaskOut(serializers.Serializer):
    id = serializers.IntegerField()
    policy = serializers.CharField(source="policy.key")
    queue = serializers.CharField(source="queue.slug")
    reason = serializers.CharField()
    status = serializers.ChoiceField(choices=TaskStatus.choices)
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)


class UpstreamGoldOut(serializers.Serializer):
    id = serializers.IntegerField()
    policy = serializers.CharField(source="policy.key")
    policy_version = serializers.IntegerField(source="policy_version.number")
    version = serializers.IntegerField(help_text="The gold label's own version (corrections add one).")
    labels = serializers.ListField(child=serializers.CharField())
    severity = serializers.CharField()
    label_source = serializers.CharField(source="source")
    created_at = serializers.DateTimeField()


class UpstreamAppealOut(serializers.Serializer):
    id = serializers.IntegerField()
    appeal_id = serializers.CharField(source="external_ref")
    policy = serializers.CharField(source="policy.key")
    status = serializers.CharField()
    original_labels = serializers.ListField(child=serializers.CharField())
    decision_id = serializers.IntegerField(allow_null=True, help_text="The model decision appealed, if any.")
    outcome_gold_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    decided_at = serializers.DateTimeField(allow_null=True)


class UpstreamItemOut(serializers.Serializer):
    id = serializers.IntegerField(source="item.id")
    source = serializers.CharField(source="item.source")
    external_id = serializers.CharField(source="item.external_id")
    modality = serializers.ChoiceField(source="item.modality", choices=Modality.choices)
    created_at = serializers.DateTimeField(source="item.created_at")
    decisions = UpstreamDecisionOut(many=True)
    tasks = UpstreamTaskOut(many=True)
    gold_labels = UpstreamGoldOut(many=True, help_text="The current gold label per policy.")
    appeals = UpstreamAppealOut(many=True)


class FoundGoldOut(serializers.Serializer):
    policy = serializers.CharField(source="policy.key")
    version = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField())


class FoundItemOut(serializers.Serializer):
    id = serializers.IntegerField(source="item.id")
    source = serializers.CharField(source="item.source")
    external_id = serializers.CharField(source="item.external_id")
    created_at = serializers.DateTimeField(source="item.created_at")
    policies = serializers.SerializerMethodField()
    statuses = serializers.ListField(
        source="status_keys", child=serializers.ChoiceField(choices=list(STATUSES)), help_text=STATUS_HELP
    )
    gold_labels = FoundGoldOut(many=True, source="gold", help_text="The current gold label per policy.")

    def get_policies(self, row: ItemRow) -> list[str]:
        return [policy.key for policy in row.policies]


class ItemPageOut(serializers.Serializer):
    results = FoundItemOut(many=True, source="rows")
    next = serializers.CharField(
        source="next_cursor", allow_null=True, help_text="Pass as `after` for the next page; null on the last."
    )
    previous = serializers.CharField(
        source="previous_cursor", allow_null=True, help_text="Pass as `before` for the previous page."
    )


SEARCH_DESCRIPTIONS = {
    "text": "Case-insensitive substring of the item's text, at least 3 characters.",
    "policy": "Policy key: items with a decision, task or gold label under it; narrows `status` to it.",
    "label": "`<policy key>:<label value>`: the item's current gold label under that policy includes it.",
    "status": "One of: " + "; ".join(f"`{key}`: {meaning}" for key, (_, meaning) in STATUSES.items()) + ".",
    "received_from": "First day received (UTC, YYYY-MM-DD, inclusive).",
    "received_to": "Last day received (inclusive).",
    "decided_from": "First day an upstream model decided it (inclusive).",
    "decided_to": "Last day decided (inclusive).",
    "after": "Cursor from a page's `next`.",
    "before": "Cursor from a page's `previous`.",
}


class ItemLookupView(APIView):
    permission_classes = [HasScope]
    required_scope = "items:read"

    @extend_schema(
        operation_id="items_lookup",
        summary="Look an item up by its upstream identity, or search items",
        description=(
            "With `source` and `external_id` only: the item with exactly that identity, its model "
            "decisions, its review tasks' states, its current gold labels and its appeals. With any "
            "search parameter: a page of up to 50 matching items, newest first (by received time, then "
            "id), each with its policies, statuses and current gold labels, and the cursors of the next "
            "and previous pages; `source` and `external_id` are then exact filters. There is no listing "
            "of a source without a search parameter. No reviewer is named. Requires the `items:read` scope."
        ),
        parameters=[
            OpenApiParameter("source", str, description="Upstream system, e.g. 'comments'."),
            OpenApiParameter("external_id", str, description="The content's id upstream."),
            *(OpenApiParameter(name, str, description=text) for name, text in SEARCH_DESCRIPTIONS.items()),
        ],
        responses={
            200: PolymorphicProxySerializer(
                component_name="ItemLookupOrPage",
                serializers=[UpstreamItemOut, ItemPageOut],
                resource_type_field_name=None,
            ),
            400: ErrorSerializer,
            404: ErrorSerializer,
        },
    )
    def get(self, request: Request) -> Response:
        if any(name in request.query_params for name in SEARCH_PARAMETERS):
            return self._search(request)
        query = ItemQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        history = item_history(**query.validated_data)
        if history is None:
            raise NotFound("No item with this source and external_id.")
        return Response(UpstreamItemOut(history).data)

    def _search(self, request: Request) -> Response:
        form = ItemSearchForm(request.query_params)
        if not form.is_valid():
            raise ValidationError({name: [str(error) for error in errors] for name, errors in form.errors.items()})
        page = item_search(filters=form.filters(), cursor=form.cursor())
        return Response(ItemPageOut(page).data)
