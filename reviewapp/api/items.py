"""GET /api/v1/items?source=&external_id=: what became of an item, for the upstream that sent it."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ..models import Modality, RoutingOutcome, TaskStatus
from ..services.items import item_history
from .auth import HasScope
from .serializers import ErrorSerializer

# Listing every item of a source would be an export by another name (and unbounded): the lookup is
# by exact upstream identity only, and a request without `external_id` is refused with this.
EXTERNAL_ID_REQUIRED = (
    "external_id is required: items are looked up by their exact (source, external_id); "
    "listing a source's items is not offered (use dataset exports)."
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


class ItemLookupView(APIView):
    permission_classes = [HasScope]
    required_scope = "items:read"

    @extend_schema(
        operation_id="items_lookup",
        summary="Look an item up by its upstream identity",
        description=(
            "The item with exactly this `source` and `external_id`, its model decisions, its review "
            "tasks' states, its current gold labels and its appeals. Both parameters are required: "
            "there is no listing by source. No reviewer is named. Requires the `items:read` scope."
        ),
        parameters=[
            OpenApiParameter("source", str, required=True, description="Upstream system, e.g. 'comments'."),
            OpenApiParameter("external_id", str, required=True, description="The content's id upstream."),
        ],
        responses={200: UpstreamItemOut, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        query = ItemQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        history = item_history(**query.validated_data)
        if history is None:
            raise NotFound("No item with this source and external_id.")
        return Response(UpstreamItemOut(history).data)
