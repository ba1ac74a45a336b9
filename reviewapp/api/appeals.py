"""POST /api/v1/appeals: upstream services forward user appeals."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.services.appeals import appeal_open

from .auth import HasScope, token_actor
from .serializers import ErrorSerializer


class AppealIn(serializers.Serializer):
    source = serializers.CharField(max_length=100)
    external_id = serializers.CharField(max_length=255)
    policy = serializers.SlugField(max_length=64)
    appeal_id = serializers.CharField(max_length=255, help_text="The appeal's id upstream; resending it is a no-op.")
    statement = serializers.CharField(max_length=10_000, allow_blank=True, required=False, default="")


class AppealOut(serializers.Serializer):
    id = serializers.IntegerField()
    appeal_id = serializers.CharField(source="external_ref")
    status = serializers.CharField()
    original_labels = serializers.ListField(child=serializers.CharField())
    task_id = serializers.IntegerField(allow_null=True)


class AppealsView(APIView):
    permission_classes = [HasScope]
    required_scope = "appeals:write"

    @extend_schema(
        operation_id="appeals_open",
        summary="Open an appeal (idempotent by appeal_id)",
        description=(
            "Reopens the item under the policy in the appeals queue, contesting its current gold label or "
            "else its automatic action. 409 while no appeals queue is active: a policy lead creates one on "
            "/lead/appeals/."
        ),
        request=AppealIn,
        responses={201: AppealOut, 200: AppealOut, 400: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        data = AppealIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        opened = appeal_open(
            source=values["source"],
            external_id=values["external_id"],
            policy_key=values["policy"],
            external_ref=values["appeal_id"],
            statement=values["statement"],
            actor=token_actor(request),
        )
        code = status.HTTP_201_CREATED if opened.created else status.HTTP_200_OK
        return Response(AppealOut(opened.appeal).data, status=code)
