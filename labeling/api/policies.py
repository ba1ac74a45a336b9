"""Policy drafts and versions over REST, for leads (session or a lead's token with `policies:write`).

The same services as the lead pages: create/update a draft, send it for review, publish it (with
the effective time and the re-review choice), list versions, diff any two. A service refusal
(ValidationError) is a 400 with its message (reviewapp.api.errors).
"""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reviewapp.api.auth import ActsForLead, token_actor
from reviewapp.api.serializers import ErrorSerializer
from reviewapp.models import Queue

from ..llm.services.drafts import (
    RelabelChoice,
    policy_draft_create,
    policy_draft_publish,
    policy_draft_request_review,
    policy_draft_update,
)
from ..models import Policy, PolicyDraft, RelabelMode
from ..services.policies import policy_create
from ..services.policy_versions import PolicyDiff, policy_change_summary, policy_diff

SCOPE = "policies:write"
ERRORS = {400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


class DraftIn(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    guideline = serializers.CharField(max_length=100_000)
    label_schema = serializers.JSONField(help_text="As the policy version's label schema.")
    confirm_removed = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        help_text="Each label value of the base version the draft removes, confirmed by name.",
    )


class DraftOut(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    policy = serializers.CharField(source="policy.key")
    base_version = serializers.IntegerField(source="base_version.number")
    title = serializers.CharField()
    guideline = serializers.CharField()
    label_schema = serializers.JSONField()
    status = serializers.CharField()
    published_version = serializers.SerializerMethodField()

    def get_published_version(self, draft: PolicyDraft) -> int | None:
        return draft.published_version.number if draft.published_version_id else None


class PublishIn(serializers.Serializer):
    effective_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    relabel_mode = serializers.ChoiceField(choices=RelabelMode.choices, default=RelabelMode.NONE)
    relabel_queue = serializers.SlugField(required=False, allow_null=True, default=None, help_text="Queue slug.")
    relabel_sample_size = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1)
    seed = serializers.IntegerField(required=False, default=0, min_value=0)


class VersionOut(serializers.Serializer):
    number = serializers.IntegerField()
    effective_at = serializers.DateTimeField()
    change_summary = serializers.CharField()
    created_at = serializers.DateTimeField()


class PublishOut(VersionOut):
    relabel_mode = serializers.CharField(source="publication.relabel_mode")
    relabel_tasks = serializers.IntegerField(source="publication.relabel_tasks")


class LabelOut(serializers.Serializer):
    value = serializers.CharField()
    title = serializers.CharField()


class LabelChangeOut(serializers.Serializer):
    value = serializers.CharField()
    old_title = serializers.CharField()
    new_title = serializers.CharField()
    old_description = serializers.CharField()
    new_description = serializers.CharField()


class GuidelineLineOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["added", "removed", "context", "gap"])
    text = serializers.CharField()


class DiffOut(serializers.Serializer):
    a = serializers.IntegerField()
    b = serializers.IntegerField()
    summary = serializers.CharField()
    labels_added = LabelOut(many=True)
    labels_removed = LabelOut(many=True)
    labels_changed = LabelChangeOut(many=True)
    order_changed = serializers.BooleanField()
    old_severity = serializers.ListField(child=serializers.CharField())
    new_severity = serializers.ListField(child=serializers.CharField())
    old_multiple = serializers.BooleanField()
    new_multiple = serializers.BooleanField()
    guideline_added = serializers.IntegerField()
    guideline_removed = serializers.IntegerField()
    guideline_lines = GuidelineLineOut(many=True)


def _diff_body(a: int, b: int, diff: PolicyDiff) -> dict[str, Any]:
    return {
        "a": a,
        "b": b,
        "summary": policy_change_summary(diff),
        "labels_added": [{"value": v, "title": t} for v, t in diff.added],
        "labels_removed": [{"value": v, "title": t} for v, t in diff.removed],
        "labels_changed": [vars(change) for change in diff.changed],
        "order_changed": diff.order_changed,
        "old_severity": diff.old_severity,
        "new_severity": diff.new_severity,
        "old_multiple": diff.old_multiple,
        "new_multiple": diff.new_multiple,
        "guideline_added": diff.guideline_added,
        "guideline_removed": diff.guideline_removed,
        "guideline_lines": [vars(line) for line in diff.guideline_lines],
    }


def _draft(draft_id: int) -> PolicyDraft:
    return get_object_or_404(
        PolicyDraft.objects.select_related("policy", "base_version", "published_version"), pk=draft_id
    )


class DraftsView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE

    @extend_schema(
        operation_id="policy_drafts_create",
        summary="Start a draft of the policy's next version from the version in force",
        request=DraftIn,
        responses={201: DraftOut, **ERRORS},
    )
    def post(self, request: Request, policy_key: str) -> Response:
        policy = get_object_or_404(Policy, key=policy_key, is_active=True)
        data = DraftIn(data=request.data)
        data.is_valid(raise_exception=True)
        draft = policy_draft_create(policy=policy, actor=token_actor(request), **data.validated_data)
        return Response(DraftOut(_draft(draft.pk)).data, status=status.HTTP_201_CREATED)


class DraftView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE

    @extend_schema(operation_id="policy_drafts_retrieve", summary="A draft", responses={200: DraftOut, **ERRORS})
    def get(self, request: Request, draft_id: int) -> Response:
        return Response(DraftOut(_draft(draft_id)).data)

    @extend_schema(
        operation_id="policy_drafts_update",
        summary="Replace an unpublished draft's title, guideline and label schema (a draft in review returns to draft)",
        request=DraftIn,
        responses={200: DraftOut, **ERRORS},
    )
    def put(self, request: Request, draft_id: int) -> Response:
        draft = _draft(draft_id)
        data = DraftIn(data=request.data)
        data.is_valid(raise_exception=True)
        policy_draft_update(draft=draft, actor=token_actor(request), **data.validated_data)
        return Response(DraftOut(_draft(draft_id)).data)


class DraftRequestReviewView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE

    @extend_schema(
        operation_id="policy_drafts_request_review",
        summary="Send a draft for review (idempotent); only a draft in review can be published",
        request=None,
        responses={200: DraftOut, **ERRORS},
    )
    def post(self, request: Request, draft_id: int) -> Response:
        policy_draft_request_review(draft=_draft(draft_id), actor=token_actor(request))
        return Response(DraftOut(_draft(draft_id)).data)


class DraftPublishView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE

    @extend_schema(
        operation_id="policy_drafts_publish",
        summary="Publish a draft in review as the next version, choosing its effective time and what to re-review",
        description=(
            "relabel_mode: none, sample (a stratified sample of relabel_sample_size gold items drawn with seed) "
            "or affected (every gold item whose label the draft removes or redefines); relabel_queue is the queue "
            "slug the re-review tasks open in. A second publish of the same draft is refused (400)."
        ),
        request=PublishIn,
        responses={201: PublishOut, **ERRORS},
    )
    def post(self, request: Request, draft_id: int) -> Response:
        draft = _draft(draft_id)
        data = PublishIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        queue = None
        if values["relabel_queue"]:
            queue = get_object_or_404(Queue, slug=values["relabel_queue"], is_active=True)
        choice = RelabelChoice(
            mode=values["relabel_mode"], queue=queue, sample_size=values["relabel_sample_size"], seed=values["seed"]
        )
        version = policy_draft_publish(
            draft=draft, actor=token_actor(request), effective_at=values["effective_at"], relabel=choice
        )
        return Response(PublishOut(version).data, status=status.HTTP_201_CREATED)


class PolicyIn(serializers.Serializer):
    key = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    guideline = serializers.CharField()
    label_schema = serializers.JSONField(
        help_text="As PolicyVersion.label_schema: labels, allow_multiple, severity_levels."
    )
    severity_weight = serializers.FloatField(default=1.0)


class PolicyOut(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    severity_weight = serializers.FloatField()
    version = VersionOut(help_text="Version 1, in force from creation.")


class PoliciesView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE

    @extend_schema(
        operation_id="policies_create",
        summary="Create a policy with its first version, in force at once",
        request=PolicyIn,
        responses={201: PolicyOut, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        data = PolicyIn(data=request.data)
        data.is_valid(raise_exception=True)
        policy = policy_create(**data.validated_data, actor=token_actor(request))
        body = {
            "key": policy.key,
            "name": policy.name,
            "severity_weight": policy.severity_weight,
            "version": policy.versions.get(number=1),
        }
        return Response(PolicyOut(body).data, status=status.HTTP_201_CREATED)


class VersionsView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE

    @extend_schema(
        operation_id="policy_versions_list",
        summary="The policy's versions, newest first (a future effective_at is scheduled)",
        responses={200: VersionOut(many=True), **ERRORS},
    )
    def get(self, request: Request, policy_key: str) -> Response:
        policy = get_object_or_404(Policy, key=policy_key)
        return Response(VersionOut(policy.versions.order_by("-number"), many=True).data)


class DiffQuery(serializers.Serializer):
    a = serializers.IntegerField(min_value=1)
    b = serializers.IntegerField(min_value=1)


class DiffView(APIView):
    permission_classes = [ActsForLead]
    required_scope = SCOPE

    @extend_schema(
        operation_id="policy_versions_diff",
        summary="What changed from version a to version b: labels, severity, multi-label, guideline lines",
        parameters=[
            OpenApiParameter("a", int, required=True, description="Version number to compare from."),
            OpenApiParameter("b", int, required=True, description="Version number to compare to."),
        ],
        responses={200: DiffOut, **ERRORS},
    )
    def get(self, request: Request, policy_key: str) -> Response:
        policy = get_object_or_404(Policy, key=policy_key)
        query = DiffQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        a = get_object_or_404(policy.versions, number=query.validated_data["a"])
        b = get_object_or_404(policy.versions, number=query.validated_data["b"])
        return Response(DiffOut(_diff_body(a.number, b.number, policy_diff(a=a, b=b))).data)
