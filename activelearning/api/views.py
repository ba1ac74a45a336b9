"""REST for ML engineers and automation: the model registry, rounds, label-error runs, and threshold approval.

Who: a signed-in policy lead, or a service token with the `models:write` scope (reading the
registry and starting rounds). Approving thresholds changes routing, so it needs a person who is
a lead: a session, or a personal token of a lead with `models:write`.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import Policy
from reviewapp.access import is_lead
from reviewapp.api.auth import token_actor
from reviewapp.api.errors import error_body
from reviewapp.api.serializers import ErrorSerializer
from reviewapp.models import ServiceToken

from ..models import (
    LabelErrorRun,
    ModelVersion,
    OutOfFoldScore,
    PromotionDecision,
    RunTrigger,
    ThresholdProposal,
    TrainingRun,
)
from ..services.drift import policy_drift
from ..services.rounds import InvalidRound, RoundAlreadyActive, training_run_start
from ..services.thresholds import threshold_proposal_approve, threshold_proposal_reject, threshold_sources
from ..strata import ALL, figure_label

SCOPE = "models:write"
READ_SCOPES = ("models:read", "models:write")


class LeadOrModelsToken(permissions.BasePermission):
    """A signed-in policy lead, or any token carrying `models:write`."""

    message = "Policy leads, or a token with the 'models:write' scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ServiceToken):
            return SCOPE in request.auth.scopes
        return is_lead(request.user)


class LeadOrModelsReadToken(permissions.BasePermission):
    """A signed-in policy lead, or a token carrying `models:read` (or `models:write`, which reads too)."""

    message = "Policy leads, or a token with the 'models:read' scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ServiceToken):
            return any(scope in request.auth.scopes for scope in READ_SCOPES)
        return is_lead(request.user)


class LeadPerson(permissions.BasePermission):
    """A policy lead in person: a session, or a lead's personal token with `models:write`."""

    message = "Only a policy lead (session or personal token with 'models:write') may decide thresholds."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ServiceToken):
            return SCOPE in request.auth.scopes and request.auth.user_id is not None and is_lead(request.user)
        return is_lead(request.user)


class DecisionOut(serializers.ModelSerializer):
    champion = serializers.IntegerField(source="champion_id", allow_null=True)

    class Meta:
        model = PromotionDecision
        fields = ["outcome", "reasons", "champion", "comparison", "created_at"]


class MeasuredOnOut(serializers.Serializer):
    """Where the version's held-out figures come from, in words (split · stratum, weighting, n)."""

    pooled = serializers.CharField(help_text="The top-level figures of `metrics`: every test stratum, unweighted.")
    strata = serializers.DictField(child=serializers.CharField(), help_text="Label per stratum of `metrics.strata`.")
    decision_stratum = serializers.CharField(allow_null=True, help_text="The stratum promotion and thresholds use.")


class ModelVersionOut(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy.key")
    model_name = serializers.CharField()
    version_label = serializers.CharField()
    promotion = serializers.SerializerMethodField()
    measured_on = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "policy",
            "model_name",
            "version_label",
            "number",
            "status",
            "training_run",
            "encoder",
            "encoder_id",
            "hyperparameters",
            "task",
            "head_labels",
            "classes",
            "positive_label",
            "artifact_sha256",
            "artifact_bytes",
            "gold_watermark",
            "training_set_sha256",
            "snapshot_id",
            "n_train",
            "n_dev",
            "metrics",
            "evaluated_at",
            "created_at",
            "promoted_at",
            "retired_at",
            "promotion",
            "measured_on",
        ]

    @extend_schema_field(MeasuredOnOut)
    def get_measured_on(self, version: ModelVersion) -> dict[str, Any]:
        metrics = version.metrics or {}
        strata = metrics.get("strata") or {}
        return {
            "pooled": figure_label(metrics.get("split", "test"), ALL, n=int(metrics.get("n") or 0)),
            "strata": {
                name: figure_label(
                    s["split"], name, n=s["n"], n_eff=s.get("n_eff") or 0.0, weighted=bool(s.get("weighted"))
                )
                for name, s in strata.items()
            },
            "decision_stratum": metrics.get("decision_stratum"),
        }

    @extend_schema_field(DecisionOut(allow_null=True))
    def get_promotion(self, version: ModelVersion) -> dict | None:
        decision = PromotionDecision.objects.filter(challenger=version).first()
        return DecisionOut(decision).data if decision else None


class RunOut(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy.key")
    model_version = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "policy",
            "status",
            "stage",
            "progress",
            "trigger",
            "requested_by_label",
            "params",
            "attempts",
            "gold_watermark",
            "training_set_sha256",
            "snapshot_id",
            "counts",
            "timings",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "model_version",
        ]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_model_version(self, run: TrainingRun) -> int | None:
        return ModelVersion.objects.filter(training_run=run).values_list("pk", flat=True).first()


class RoundIn(serializers.Serializer):
    policy = serializers.SlugField(help_text="Policy key.")
    encoder = serializers.ChoiceField(choices=["hashed", "minilm", "upstream"], required=False)
    strategy = serializers.CharField(required=False, help_text="A strategy of activelearning.strategies.STRATEGIES.")
    budget = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    balanced = serializers.BooleanField(required=False)
    queue_id = serializers.IntegerField(required=False)
    pipeline = serializers.ChoiceField(choices=["round", "train"], required=False)
    n_bootstrap = serializers.IntegerField(required=False, min_value=0, max_value=5000)
    num_buckets = serializers.IntegerField(required=False)
    positive_label = serializers.CharField(required=False)
    head = serializers.DictField(required=False, help_text='HeadConfig overrides, e.g. {"hidden": 0}.')


class ProposalSourcesOut(serializers.Serializer):
    chosen_on = serializers.CharField(
        help_text='Split and stratum the thresholds were chosen on, e.g. "dev · traffic …".'
    )
    measured_on = serializers.CharField(help_text="Split and stratum the reported figures were measured on.")
    chosen_on_test = serializers.BooleanField(
        help_text="True for proposals chosen and measured on the same test items."
    )


class ProposalOut(serializers.ModelSerializer):
    sources = serializers.SerializerMethodField()

    @extend_schema_field(ProposalSourcesOut)
    def get_sources(self, proposal: ThresholdProposal) -> dict[str, Any]:
        return threshold_sources(proposal.estimates)

    class Meta:
        model = ThresholdProposal
        fields = [
            "id",
            "model_version",
            "model_name",
            "target_precision",
            "target_recall",
            "auto_clear",
            "auto_action",
            "current_auto_clear",
            "current_auto_action",
            "estimates",
            "sources",
            "status",
            "decided_at",
            "note",
            "created_at",
        ]


class ThresholdNoteIn(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ModelsView(APIView):
    permission_classes = [LeadOrModelsToken]

    @extend_schema(
        operation_id="models_list",
        summary="Model versions, newest first, with held-out metrics and promotion decisions",
        parameters=[OpenApiParameter("policy", str, description="Only this policy's versions.")],
        responses={200: ModelVersionOut(many=True)},
    )
    def get(self, request: Request) -> Response:
        versions = ModelVersion.objects.select_related("policy").order_by("-created_at")
        if request.query_params.get("policy"):
            versions = versions.filter(policy__key=request.query_params["policy"])
        return Response(ModelVersionOut(versions[:100], many=True).data)


class ModelDetailView(APIView):
    permission_classes = [LeadOrModelsToken]

    @extend_schema(operation_id="models_retrieve", responses={200: ModelVersionOut, 404: ErrorSerializer})
    def get(self, request: Request, model_id: int) -> Response:
        version = get_object_or_404(ModelVersion.objects.select_related("policy"), pk=model_id)
        return Response(ModelVersionOut(version).data)


@error_body(RoundAlreadyActive)
def round_in_progress_body(error: RoundAlreadyActive) -> dict[str, Any]:
    """409 answers with the round in progress, so the client can follow that one instead."""
    return RunOut(error.run).data


@error_body(InvalidRound)
def invalid_round_body(error: InvalidRound) -> dict[str, Any]:
    return {"detail": "invalid round", "errors": error.message_dict}


class RoundsView(APIView):
    permission_classes = [LeadOrModelsToken]

    @extend_schema(
        operation_id="rounds_start",
        summary="Start a round: retrain on gold, evaluate, promote or not, score the pool, select for review",
        description="202 with the queued round; 409 with the round in progress when the policy already has one.",
        request=RoundIn,
        responses={202: RunOut, 400: ErrorSerializer, 404: ErrorSerializer, 409: RunOut},
    )
    def post(self, request: Request) -> Response:
        data = RoundIn(data=request.data)
        data.is_valid(raise_exception=True)
        params = dict(data.validated_data)
        policy = get_object_or_404(Policy, key=params.pop("policy"), is_active=True)
        user = request.user if isinstance(request.user, User) else None
        run = training_run_start(
            policy=policy, actor=token_actor(request), params=params, trigger=RunTrigger.API, user=user
        )
        return Response(RunOut(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(APIView):
    permission_classes = [LeadOrModelsToken]

    @extend_schema(
        operation_id="rounds_retrieve", summary="A round's progress", responses={200: RunOut, 404: ErrorSerializer}
    )
    def get(self, request: Request, run_id: int) -> Response:
        return Response(RunOut(get_object_or_404(TrainingRun.objects.select_related("policy"), pk=run_id)).data)


class ProposalsView(APIView):
    permission_classes = [LeadOrModelsToken]

    @extend_schema(
        operation_id="threshold_proposals_list",
        summary="Threshold proposals, newest first, with the split and stratum they were chosen and measured on",
        parameters=[OpenApiParameter("policy", str, description="Only this policy's proposals.")],
        responses={200: ProposalOut(many=True)},
    )
    def get(self, request: Request) -> Response:
        proposals = ThresholdProposal.objects.order_by("-created_at")
        if request.query_params.get("policy"):
            proposals = proposals.filter(policy__key=request.query_params["policy"])
        return Response(ProposalOut(proposals[:100], many=True).data)


class OutOfFoldScoreOut(serializers.ModelSerializer):
    class Meta:
        model = OutOfFoldScore
        fields = ["item", "gold_label", "fold", "probabilities"]


class LabelErrorRunOut(serializers.ModelSerializer):
    policy = serializers.CharField(source="policy.key")

    class Meta:
        model = LabelErrorRun
        fields = [
            "id",
            "policy",
            "status",
            "created_by_label",
            "params",
            "encoder",
            "encoder_id",
            "encoder_config",
            "hyperparameters",
            "k",
            "seed",
            "gold_watermark",
            "training_set_sha256",
            "fold_assignment_sha256",
            "folds",
            "counts",
            "candidates_found",
            "candidates",
            "task_ids",
            "timings",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class LabelErrorRunDetailOut(LabelErrorRunOut):
    scores = OutOfFoldScoreOut(
        many=True, required=False, help_text="With ?scores=true: every item's fold and probabilities."
    )

    class Meta(LabelErrorRunOut.Meta):
        fields = [*LabelErrorRunOut.Meta.fields, "scores"]


class LabelErrorRunDetailView(APIView):
    permission_classes = [LeadOrModelsToken]

    @extend_schema(
        operation_id="label_error_runs_retrieve",
        summary="An out-of-fold label-error run: what produced its probabilities, its folds and suspects",
        parameters=[OpenApiParameter("scores", bool, description="Include every item's fold and probabilities.")],
        responses={200: LabelErrorRunDetailOut, 404: ErrorSerializer},
    )
    def get(self, request: Request, label_error_run_id: int) -> Response:
        run = get_object_or_404(LabelErrorRun.objects.select_related("policy"), pk=label_error_run_id)
        body = LabelErrorRunOut(run).data
        if request.query_params.get("scores") in ("1", "true", "yes"):
            body["scores"] = OutOfFoldScoreOut(run.scores.order_by("item_id"), many=True).data
        return Response(body)


def _decide(request: Request, proposal_id: int, decision: str) -> Response:
    proposal = get_object_or_404(ThresholdProposal, pk=proposal_id)
    note = ThresholdNoteIn(data=request.data)
    note.is_valid(raise_exception=True)
    decide = threshold_proposal_approve if decision == "approve" else threshold_proposal_reject
    decide(proposal_id=proposal.pk, lead=cast(User, request.user), note=note.validated_data.get("note", ""))
    proposal.refresh_from_db()
    return Response(ProposalOut(proposal).data)


DECIDE_RESPONSES = {200: ProposalOut, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer}


class ProposalApproveView(APIView):
    permission_classes = [LeadPerson]

    @extend_schema(
        operation_id="threshold_proposals_approve",
        request=ThresholdNoteIn,
        responses=DECIDE_RESPONSES,
        summary="Approve a threshold proposal: the routing rule of the model changes now (audited)",
    )
    def post(self, request: Request, proposal_id: int) -> Response:
        return _decide(request, proposal_id, "approve")


class ProposalRejectView(APIView):
    permission_classes = [LeadPerson]

    @extend_schema(
        operation_id="threshold_proposals_reject",
        request=ThresholdNoteIn,
        responses=DECIDE_RESPONSES,
        summary="Reject a threshold proposal; routing stays as it is",
    )
    def post(self, request: Request, proposal_id: int) -> Response:
        return _decide(request, proposal_id, "reject")


class FeatureDriftOut(serializers.Serializer):
    feature = serializers.CharField(help_text="score, text_length, language or source.")
    psi = serializers.FloatField(allow_null=True, help_text="Population stability index over the bins.")
    level = serializers.CharField(help_text="ok (< 0.1), watch (0.1–0.25), alert (≥ 0.25), or too_few items.")
    bins = serializers.ListField(child=serializers.CharField(), help_text="Fixed by the reference.")
    reference = serializers.ListField(child=serializers.FloatField(), help_text="Share of reference items per bin.")
    live = serializers.ListField(child=serializers.FloatField(), help_text="Share of live items per bin.")
    n_reference = serializers.IntegerField()
    n_live = serializers.IntegerField()


class DriftOut(serializers.Serializer):
    policy = serializers.CharField()
    level = serializers.CharField(help_text="The worst feature level; none when not measured (see reason).")
    alert = serializers.BooleanField(help_text="A feature's PSI reached the alert threshold: a round is proposed.")
    champion = serializers.CharField(allow_null=True)
    live_source = serializers.CharField(help_text="The champion's model name, or 'all models' before it runs live.")
    window_days = serializers.IntegerField()
    window_start = serializers.DateTimeField(allow_null=True)
    n_decisions = serializers.IntegerField()
    reference = serializers.CharField(help_text="The champion's training items, in words.")
    score_reference = serializers.CharField(help_text="Where the reference score distribution comes from.")
    features = FeatureDriftOut(many=True)
    reason = serializers.CharField(help_text="Why nothing was measured, if so.")
    thresholds = serializers.DictField(child=serializers.FloatField())


class DriftView(APIView):
    permission_classes = [LeadOrModelsReadToken]

    @extend_schema(
        operation_id="drift_retrieve",
        summary="Drift of a policy's live decisions from its champion's training items (PSI per feature)",
        parameters=[OpenApiParameter("policy", str, required=True, description="The policy key.")],
        responses={200: DriftOut, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        key = request.query_params.get("policy")
        if not key:
            raise ValidationError({"policy": ["Name the policy: ?policy=<key>."]})
        policy = get_object_or_404(Policy, key=key)
        return Response(DriftOut(policy_drift(policy=policy).as_dict()).data)
