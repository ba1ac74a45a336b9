"""Adjudication over REST, for leads (session or a lead's token with `adjudications:write`).

The same services as the lead pages (labeling.services.adjudication): list and read the items
waiting for a lead, decide one (the gold label), or send it back to the reviewers who answered.
A lead sees what the adjudication page shows: every answer with its reviewer, labels, severity,
rationale, handle time, estimated accuracy and policy version (withdrawn ones marked). A refusal is a 400 (bad label,
empty note) or a 409 (someone already decided or sent it back), with its message
(reviewapp.api.errors).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import django_filters
from django.db.models import Prefetch, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviewapp.api.auth import ActsForLead
from reviewapp.api.serializers import ErrorSerializer
from reviewapp.models import AssignmentReason, TaskAssignment

from ..models import Adjudication, AdjudicationReason, AdjudicationStatus, Annotation, AnnotationSource
from ..services.adjudication import adjudication_decide, adjudication_send_back
from ..services.reliability import reliabilities_in_force

SCOPE = "adjudications:write"
NOTE_MAX = 2000  # as the lead page's note fields
BIGINT_MAX = 2**63 - 1
ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class AnswerOut(serializers.Serializer):
    reviewer = serializers.CharField(source="reviewer.username")
    source = serializers.ChoiceField(
        choices=AnnotationSource.choices, help_text="`llm`: a machine-made answer, not a person's."
    )
    labels = serializers.ListField(child=serializers.CharField(), help_text="Label values.")
    severity = serializers.CharField(help_text="Empty when none was given.")
    rationale = serializers.CharField(help_text="The reviewer's words, as typed; untrusted.")
    handle_time_ms = serializers.IntegerField()
    late = serializers.BooleanField(help_text="Given after the reviewer's lease had expired.")
    policy_version = serializers.IntegerField(source="policy_version.number")
    withdrawn = serializers.SerializerMethodField(help_text="Undone, or withdrawn when a lead sent it back.")
    estimated_accuracy = serializers.SerializerMethodField(
        help_text="The reviewer's accuracy under this policy by the crowd model in force; null without one."
    )

    def get_withdrawn(self, annotation: Annotation) -> bool:
        return annotation.retracted_at is not None

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_estimated_accuracy(self, annotation: Annotation) -> float | None:
        return self.context.get("reliability", {}).get((annotation.policy_id, annotation.reviewer_id))


class AdjudicationOut(serializers.Serializer):
    id = serializers.IntegerField()
    task_id = serializers.IntegerField()
    item_id = serializers.IntegerField(source="task.item_id")
    policy = serializers.CharField(source="task.policy.key")
    reason = serializers.ChoiceField(choices=AdjudicationReason.choices)
    status = serializers.ChoiceField(choices=AdjudicationStatus.choices)
    proposed_labels = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="The consensus label, where there is one."
    )
    confidence = serializers.FloatField(allow_null=True)
    note = serializers.CharField(help_text="The reviewer's escalation note and any lead's note; untrusted.")
    answers = AnswerOut(many=True, source="task.annotations.all", help_text="Oldest first.")
    created_at = serializers.DateTimeField()
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    decided_at = serializers.DateTimeField(allow_null=True)
    gold_id = serializers.IntegerField(allow_null=True, help_text="The gold label a decision made.")


class DecideIn(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.CharField(max_length=100), min_length=1, max_length=20, help_text="Label values."
    )
    severity = serializers.CharField(required=False, allow_blank=True, default="", max_length=50)
    note = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=NOTE_MAX, help_text="Kept with the gold label."
    )
    policy_version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=BIGINT_MAX,
        help_text="The id of the policy version decided under (`policy_version.id` of a claimed task); "
        "the version in force when left out.",
    )


class GoldOut(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(help_text="The gold label's own version (corrections add one).")
    labels = serializers.ListField(child=serializers.CharField())
    severity = serializers.CharField()
    source = serializers.CharField(help_text="`adjudication`, or `appeal` for an appeal task.")
    policy_version = serializers.IntegerField(source="policy_version.number")


class SendBackIn(serializers.Serializer):
    note = serializers.CharField(max_length=NOTE_MAX, help_text="What reviewers should look at again.")


class SentBackOut(serializers.Serializer):
    task_id = serializers.IntegerField()
    reviewers = serializers.ListField(
        child=serializers.CharField(),
        help_text="Usernames the task went back to, each with the note; empty when none of the answers can be "
        "asked again (none given in the app, or their reviewers no longer work the queue): the task then "
        "reopens for one more independent review.",
    )


class AdjudicationCursor(CursorPagination):
    ordering = ("created_at", "id")  # oldest first, as the lead page lists them
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class AdjudicationFilter(django_filters.FilterSet):
    policy = django_filters.CharFilter(field_name="task__policy__key", help_text="Policy key.")
    status = django_filters.ChoiceFilter(
        choices=AdjudicationStatus.choices, help_text="`open` (the default), `decided` or `sent_back`."
    )
    reason = django_filters.ChoiceFilter(choices=AdjudicationReason.choices)

    class Meta:
        model = Adjudication
        fields = ["policy", "status", "reason"]


def _adjudications() -> QuerySet[Adjudication]:
    answers = Annotation.objects.select_related("reviewer", "policy_version").order_by("created_at", "pk")
    return Adjudication.objects.select_related("task__policy", "decided_by").prefetch_related(
        Prefetch("task__annotations", queryset=answers)
    )


def _reliability(adjudications: Iterable[Adjudication]) -> dict[tuple[int, int], float]:
    """(policy id, reviewer id) → estimated accuracy in force, for the answers of `adjudications`
    (their annotations prefetched): as the lead page shows beside each answer. Queries per policy."""
    reviewers: dict[int, set[int]] = {}
    for adjudication in adjudications:
        for annotation in adjudication.task.annotations.all():
            reviewers.setdefault(annotation.policy_id, set()).add(annotation.reviewer_id)
    return {
        (policy_id, reviewer_id): accuracy
        for policy_id, ids in reviewers.items()
        for reviewer_id, accuracy in reliabilities_in_force(policy_id=policy_id, reviewer_ids=ids).values_list(
            "reviewer_id", "accuracy"
        )
    }


class _LeadView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE


class AdjudicationListView(_LeadView, generics.ListAPIView):
    serializer_class = AdjudicationOut
    pagination_class = AdjudicationCursor
    filterset_class = AdjudicationFilter

    def get_queryset(self) -> QuerySet[Adjudication]:
        adjudications = _adjudications()
        if "status" not in self.request.query_params:
            adjudications = adjudications.filter(status=AdjudicationStatus.OPEN)
        return adjudications

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        if args:  # the page: with the estimates of its answers
            kwargs.setdefault("context", {**self.get_serializer_context(), "reliability": _reliability(args[0])})
        return super().get_serializer(*args, **kwargs)

    @extend_schema(
        operation_id="adjudications_list",
        summary="Items waiting for a lead's decision, oldest first (cursor pagination)",
        description="Open adjudications unless `status` says otherwise; each with the reviewers' answers.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class AdjudicationDetailView(_LeadView):
    @extend_schema(
        operation_id="adjudications_retrieve",
        summary="One adjudication, with the reviewers' answers",
        responses={200: AdjudicationOut, 404: ErrorSerializer},
    )
    def get(self, request: Request, adjudication_id: int) -> Response:
        adjudication = get_object_or_404(_adjudications(), pk=adjudication_id)
        context = {"reliability": _reliability([adjudication])}
        return Response(AdjudicationOut(adjudication, context=context).data)


class AdjudicationDecideView(_LeadView):
    @extend_schema(
        operation_id="adjudications_decide",
        summary="Decide an open adjudication: record the gold label",
        description="400 for labels or a severity the policy version does not allow (nothing is recorded); "
        "409 when the adjudication was already decided or sent back.",
        request=DecideIn,
        responses={201: GoldOut, **ERRORS},
    )
    def post(self, request: Request, adjudication_id: int) -> Response:
        adjudication = get_object_or_404(Adjudication, pk=adjudication_id)
        data = DecideIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        gold = adjudication_decide(
            adjudication_id=adjudication.pk,
            lead=request.user,
            labels=values["labels"],
            severity=values["severity"],
            note=values["note"],
            policy_version_id=values["policy_version"],
        )
        return Response(GoldOut(gold).data, status=status.HTTP_201_CREATED)


class AdjudicationSendBackView(_LeadView):
    @extend_schema(
        operation_id="adjudications_send_back",
        summary="Send an open adjudication back to the reviewers who answered, with a note",
        description="Their answers are withdrawn (kept in history) and the task is reserved for them, showing "
        "the note; each is notified. 400 for an empty note; 409 when already decided or sent back.",
        request=SendBackIn,
        responses={200: SentBackOut, **ERRORS},
    )
    def post(self, request: Request, adjudication_id: int) -> Response:
        adjudication = get_object_or_404(Adjudication, pk=adjudication_id)
        data = SendBackIn(data=request.data)
        data.is_valid(raise_exception=True)
        task = adjudication_send_back(
            adjudication_id=adjudication.pk, lead=request.user, note=data.validated_data["note"]
        )
        reviewers = (
            TaskAssignment.objects.filter(
                task=task, reason=AssignmentReason.SENT_BACK, fulfilled_at__isnull=True, cancelled_at__isnull=True
            )
            .order_by("pk")
            .values_list("reviewer__username", flat=True)
        )
        return Response(SentBackOut({"task_id": task.pk, "reviewers": list(reviewers)}).data)
