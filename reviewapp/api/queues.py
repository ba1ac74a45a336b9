"""REST for leads running queues and routing: queues (no delete: deactivate), members, routing rules
and the estimate of a routing change. A lead's session or a lead's personal token with `queues:write`.

The same services as the lead pages (`reviewapp.services.queues`): the same checks, the same audit.
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import Policy

from ..models import ConsensusRule, Queue, QueueKind, RoutingRule
from ..services.queues import (
    ESTIMATE_DAYS,
    QUEUE_FIELDS,
    Thresholds,
    queue_create,
    queue_member_add,
    queue_member_remove,
    queue_update,
    routing_rule_create,
    routing_rule_update,
    routing_volume_estimate,
)
from .auth import ActsForLead, token_actor
from .serializers import ErrorSerializer


class QueueSettings(serializers.Serializer):
    """A queue's settings; on update every field is optional. The service checks the ranges."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(allow_blank=True, required=False)
    kind = serializers.ChoiceField(choices=QueueKind.choices, required=False)
    sla_minutes = serializers.IntegerField(required=False, help_text="Due time after a task opens.")
    lease_seconds = serializers.IntegerField(required=False, help_text="At least 30.")
    required_annotations = serializers.IntegerField(required=False, help_text="1–5.")
    adaptive = serializers.BooleanField(required=False)
    max_annotations = serializers.IntegerField(required=False, help_text="required_annotations–5.")
    consensus_rule = serializers.ChoiceField(choices=ConsensusRule.choices, required=False)
    min_margin = serializers.FloatField(required=False)
    min_confidence = serializers.FloatField(required=False)
    auto_gold = serializers.BooleanField(required=False)
    blind_review = serializers.BooleanField(required=False)
    honeypot_rate = serializers.FloatField(required=False, help_text="[0, 1).")
    graphic_daily_cap = serializers.IntegerField(required=False, allow_null=True, help_text="Null: no cap.")
    onboarding_size = serializers.IntegerField(required=False, help_text="0 (none)–200.")
    onboarding_pass_mark = serializers.FloatField(required=False, help_text="(0, 1].")
    pause_below_accuracy = serializers.FloatField(required=False, allow_null=True, help_text="Null: never pause.")
    pause_window = serializers.IntegerField(required=False, help_text="1–500 honeypot answers.")
    show_author_history = serializers.BooleanField(required=False)
    is_active = serializers.BooleanField(required=False, help_text="False deactivates; queues are never deleted.")


class QueueIn(QueueSettings):
    slug = serializers.SlugField(max_length=64, help_text="Fixed once created.")


class QueueOut(QueueSettings):
    id = serializers.IntegerField()
    slug = serializers.CharField()
    members = serializers.SerializerMethodField()

    def get_members(self, queue: Queue) -> list[str]:
        return sorted(queue.members.values_list("username", flat=True))


class MemberIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)


class MemberOut(serializers.Serializer):
    username = serializers.CharField()
    changed = serializers.BooleanField(help_text="False: it was so already (the call is idempotent).")
    members = serializers.ListField(child=serializers.CharField())


class RuleFields(serializers.Serializer):
    auto_clear = serializers.FloatField(allow_null=True, required=False, help_text="Null: never auto-clear.")
    auto_action = serializers.FloatField(allow_null=True, required=False, help_text="Null: never auto-act.")
    audit_rate_clear = serializers.FloatField(required=False)
    audit_rate_action = serializers.FloatField(required=False)
    queue = serializers.SlugRelatedField(slug_field="slug", queryset=Queue.objects.all(), required=False)
    audit_queue = serializers.SlugRelatedField(
        slug_field="slug", queryset=Queue.objects.all(), allow_null=True, required=False
    )


class RuleIn(RuleFields):
    policy = serializers.SlugRelatedField(slug_field="key", queryset=Policy.objects.all())
    model_name = serializers.CharField(max_length=100, default=RoutingRule.ANY_MODEL)
    queue = serializers.SlugRelatedField(slug_field="slug", queryset=Queue.objects.all())


class RuleOut(serializers.Serializer):
    id = serializers.IntegerField()
    policy = serializers.CharField(source="policy.key")
    model_name = serializers.CharField()
    auto_clear = serializers.FloatField(allow_null=True)
    auto_action = serializers.FloatField(allow_null=True)
    audit_rate_clear = serializers.FloatField()
    audit_rate_action = serializers.FloatField()
    queue = serializers.CharField(source="queue.slug")
    audit_queue = serializers.CharField(source="audit_queue.slug", allow_null=True)
    updated_at = serializers.DateTimeField()


class EstimateQuery(serializers.Serializer):
    policy = serializers.SlugRelatedField(slug_field="key", queryset=Policy.objects.all())
    model_name = serializers.CharField(max_length=100, default=RoutingRule.ANY_MODEL)
    auto_clear = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    auto_action = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    audit_rate_clear = serializers.FloatField(default=0.0, min_value=0, max_value=1)
    audit_rate_action = serializers.FloatField(default=0.0, min_value=0, max_value=1)


class VolumeOut(serializers.Serializer):
    auto_actioned = serializers.IntegerField()
    auto_cleared = serializers.IntegerField()
    queued = serializers.IntegerField(help_text="Decisions in the human-review band.")
    audit_expected = serializers.FloatField(help_text="Automatic decisions expected to be sampled into audit.")


class EstimateOut(serializers.Serializer):
    policy = serializers.CharField(source="policy_key")
    model_name = serializers.CharField()
    since = serializers.DateTimeField()
    decisions = serializers.IntegerField(help_text="Decisions the rule governs in the window (shadow ones excluded).")
    current_rule_model = serializers.CharField(allow_null=True, help_text="The rule in force: '*' or the model's own.")
    current = VolumeOut(allow_null=True)
    proposed = VolumeOut()


def _queue(queue_id: int) -> Queue:
    return get_object_or_404(Queue.objects.prefetch_related("members"), pk=queue_id)


class LeadQueuesView(APIView):
    permission_classes = [ActsForLead]
    required_scope = "queues:write"


class QueuesView(LeadQueuesView):
    @extend_schema(
        operation_id="queues_list", summary="Every queue, active first", responses={200: QueueOut(many=True)}
    )
    def get(self, request: Request) -> Response:
        queues = Queue.objects.prefetch_related("members").order_by("-is_active", "slug")
        return Response(QueueOut(queues, many=True).data)

    @extend_schema(
        operation_id="queues_create",
        summary="Create a queue",
        request=QueueIn,
        responses={201: QueueOut, 400: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        data = QueueIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        queue = queue_create(slug=values.pop("slug"), actor=token_actor(request), **values)
        return Response(QueueOut(_queue(queue.pk)).data, status=status.HTTP_201_CREATED)


class QueueDetailView(LeadQueuesView):
    @extend_schema(operation_id="queues_retrieve", responses={200: QueueOut, 404: ErrorSerializer})
    def get(self, request: Request, queue_id: int) -> Response:
        return Response(QueueOut(_queue(queue_id)).data)

    @extend_schema(
        operation_id="queues_update",
        summary="Change a queue's settings (is_active=false deactivates it)",
        request=QueueSettings(partial=True),
        responses={200: QueueOut, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def patch(self, request: Request, queue_id: int) -> Response:
        queue = _queue(queue_id)
        data = QueueSettings(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = {key: value for key, value in data.validated_data.items() if key in QUEUE_FIELDS}
        queue_update(queue_id=queue.pk, actor=token_actor(request), **values)
        return Response(QueueOut(_queue(queue.pk)).data)


def _member_response(queue_id: int, username: str, changed: bool) -> Response:
    members = sorted(_queue(queue_id).members.values_list("username", flat=True))
    return Response(MemberOut({"username": username, "changed": changed, "members": members}).data)


class QueueMembersView(LeadQueuesView):
    @extend_schema(
        operation_id="queues_members_add",
        summary="Add a member by username (idempotent)",
        request=MemberIn,
        responses={200: MemberOut, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = _queue(queue_id)
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        changed = queue_member_add(queue_id=queue.pk, username=username, actor=token_actor(request))
        return _member_response(queue.pk, username, changed)


class QueueMemberRemoveView(LeadQueuesView):
    @extend_schema(
        operation_id="queues_members_remove",
        summary="Remove a member by username (idempotent)",
        request=MemberIn,
        responses={200: MemberOut, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = _queue(queue_id)
        data = MemberIn(data=request.data)
        data.is_valid(raise_exception=True)
        username = data.validated_data["username"]
        changed = queue_member_remove(queue_id=queue.pk, username=username, actor=token_actor(request))
        return _member_response(queue.pk, username, changed)


def _rules() -> Any:
    return RoutingRule.objects.select_related("policy", "queue", "audit_queue")


class RoutingRulesView(LeadQueuesView):
    @extend_schema(operation_id="routing_rules_list", responses={200: RuleOut(many=True)})
    def get(self, request: Request) -> Response:
        return Response(RuleOut(_rules().order_by("policy__key", "model_name"), many=True).data)

    @extend_schema(
        operation_id="routing_rules_create",
        summary="Create the rule of a (policy, model); '*' for the policy's other models",
        request=RuleIn,
        responses={201: RuleOut, 400: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        data = RuleIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        rule = routing_rule_create(
            policy=values["policy"],
            model_name=values["model_name"],
            auto_clear=values.get("auto_clear"),
            auto_action=values.get("auto_action"),
            audit_rate_clear=values.get("audit_rate_clear", 0.0),
            audit_rate_action=values.get("audit_rate_action", 0.0),
            queue=values["queue"],
            audit_queue=values.get("audit_queue"),
            actor=token_actor(request),
        )
        return Response(RuleOut(_rules().get(pk=rule.pk)).data, status=status.HTTP_201_CREATED)


class RoutingRuleDetailView(LeadQueuesView):
    @extend_schema(operation_id="routing_rules_retrieve", responses={200: RuleOut, 404: ErrorSerializer})
    def get(self, request: Request, routing_rule_id: int) -> Response:
        return Response(RuleOut(get_object_or_404(_rules(), pk=routing_rule_id)).data)

    @extend_schema(
        operation_id="routing_rules_update",
        summary="Change a rule's thresholds, audit rates or queues",
        request=RuleFields,
        responses={200: RuleOut, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def patch(self, request: Request, routing_rule_id: int) -> Response:
        rule = get_object_or_404(RoutingRule, pk=routing_rule_id)
        data = RuleFields(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        routing_rule_update(rule_id=rule.pk, actor=token_actor(request), **data.validated_data)
        return Response(RuleOut(_rules().get(pk=rule.pk)).data)


class RoutingEstimateView(LeadQueuesView):
    @extend_schema(
        operation_id="routing_rules_estimate",
        summary=f"What proposed thresholds would have done to the last {ESTIMATE_DAYS} days of decisions",
        description=(
            "Counts the policy's decisions of the window that a rule for `model_name` governs (a model's own "
            "rule wins over '*'; shadow decisions are left out), routed by the rule in force now (`current`, "
            "null when none) and by the proposed thresholds. Missing thresholds are off."
        ),
        parameters=[EstimateQuery],
        responses={200: EstimateOut, 400: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        query = EstimateQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        values = query.validated_data
        proposed = Thresholds(
            values.get("auto_clear"), values.get("auto_action"), values["audit_rate_clear"], values["audit_rate_action"]
        )
        estimate = routing_volume_estimate(policy=values["policy"], model_name=values["model_name"], proposed=proposed)
        return Response(EstimateOut(estimate).data)
