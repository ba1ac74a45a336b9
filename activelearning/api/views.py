"""REST for ML engineers and automation: the model registry, rounds, label-error runs, threshold
approval and deployment (shadow / live / rollback).

Who: a signed-in policy lead, or a service token with the `models:write` scope (reading the
registry and starting rounds). Approving thresholds and switching deployments change routing, so
they need a person who is a lead: a session, or a personal token of a lead with `models:write`.
Downloading a model's bundle takes `models:read` (or `models:write`); scoring items with a served
model takes `models:predict`, a scope that reads no registry data and downloads no weights.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from activelearning.predict_items import MAX_BATCH, MAX_ID_CHARS, MAX_TEXT_CHARS
from labeling.exports.api.views import IgnoreFormatParameter
from labeling.models import Policy
from reviewapp.access import is_lead
from reviewapp.api.auth import token_actor
from reviewapp.api.errors import error_body
from reviewapp.api.serializers import ErrorSerializer
from reviewapp.models import ServiceToken

from ..models import (
    DeploymentMode,
    LabelErrorRun,
    ModelDeployment,
    ModelStatus,
    ModelVersion,
    OutOfFoldScore,
    PromotionDecision,
    RunTrigger,
    ThresholdProposal,
    TrainingRun,
)
from ..services.deployment import MAX_SHADOW_DAYS, model_deploy, model_rollback
from ..services.drift import policy_drift
from ..services.online_metrics import DEFAULT_WEEKS, MAX_WEEKS, online_metrics_compute
from ..services.rounds import InvalidRound, RoundAlreadyActive, training_run_start
from ..services.serving import model_bundle, model_predict
from ..services.thresholds import threshold_proposal_approve, threshold_proposal_reject, threshold_sources
from ..strata import ALL, figure_label

SCOPE = "models:write"
READ_SCOPES = ("models:read", SCOPE)
PREDICT_SCOPES = ("models:predict",)


class LeadOrModelsToken(permissions.BasePermission):
    """A signed-in policy lead, or any token carrying `models:write`."""

    message = "Policy leads, or a token with the 'models:write' scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ServiceToken):
            return SCOPE in request.auth.scopes
        return is_lead(request.user)


class LeadOrModelsReadToken(permissions.BasePermission):
    """A signed-in policy lead, or a token with `models:read` (or `models:write`, which reads the registry)."""

    message = "Policy leads, or a token with the 'models:read' scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ServiceToken):
            return bool({"models:read", SCOPE} & set(request.auth.scopes))
        return is_lead(request.user)


class LeadPerson(permissions.BasePermission):
    """A policy lead in person: a session, or a lead's personal token with `models:write`."""

    message = "Only a policy lead (session or personal token with 'models:write') may decide thresholds."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ServiceToken):
            return SCOPE in request.auth.scopes and request.auth.user_id is not None and is_lead(request.user)
        return is_lead(request.user)


class LeadOrScopedToken(permissions.BasePermission):
    """A signed-in policy lead, or a token carrying one of the view's `token_scopes`."""

    message = "Policy leads, or a token with the scope this endpoint names."

    def has_permission(self, request: Request, view: Any) -> bool:
        scopes = view.token_scopes
        if isinstance(request.auth, ServiceToken):
            if any(scope in request.auth.scopes for scope in scopes):
                return True
            self.message = f"This token lacks the {' or '.join(repr(s) for s in scopes)} scope."
            return False
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


class ModelArtifactView(APIView):
    permission_classes = [LeadOrScopedToken]
    token_scopes = READ_SCOPES
    content_negotiation_class = IgnoreFormatParameter  # the body is a zip whatever the client accepts

    @extend_schema(
        operation_id="models_artifact",
        summary="Download a model version as one self-describing bundle (zip; needs models:read)",
        description=(
            "A deterministic zip: `model.safetensors` (head weights), `config.json` (encoder, labels, classes, "
            "positive label, per-label temperature, routing thresholds in force, input schema), `model_card.json` "
            "and `MODEL_CARD.md` (training set, split, held-out metrics with intervals and where they were measured, "
            "limitations, intended use) and `SHA256SUMS`. The same model and card give the same bytes; their "
            "sha256 is the `ETag` and `X-Reviewapp-Artifact-Sha256`. `activelearning.bundle.load_bundle` loads it "
            "and reproduces the predict endpoint's scores. 409 when the stored artifact is missing or does not "
            "match its registered sha256 (nothing is sent then)."
        ),
        responses={
            (200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The bundle"),
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def get(self, request: Request, model_id: int) -> HttpResponse:
        version = get_object_or_404(ModelVersion.objects.select_related("policy"), pk=model_id)
        bundle = model_bundle(version=version)
        response = HttpResponse(bundle.data, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{bundle.filename}"'
        response["ETag"] = f'"{bundle.sha256}"'
        response["X-Reviewapp-Artifact-Sha256"] = bundle.sha256
        response["Cache-Control"] = "private, no-cache"
        return response


@extend_schema_field(
    {
        "type": "object",
        "description": "One item: `text`, or `embedding` (a vector the model reads), and an optional `id` echoed back.",
        "properties": {
            "text": {"type": "string", "maxLength": MAX_TEXT_CHARS},
            "embedding": {"type": "array", "items": {"type": "number"}},
            "id": {"type": "string", "maxLength": MAX_ID_CHARS},
        },
        "additionalProperties": False,
    }
)
class PredictItemField(serializers.DictField):
    """An item passed on unvalidated: `activelearning.predict_items.check_items` validates it for the model."""


class PredictIn(serializers.Serializer):
    items = serializers.ListField(
        child=PredictItemField(),
        min_length=1,
        max_length=MAX_BATCH,
        error_messages={
            "max_length": f"At most {MAX_BATCH} items per call; split the batch.",
            "min_length": "Give at least one item.",
        },
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Version number of the policy's model; the champion when absent."
    )


class PredictionOut(serializers.Serializer):
    id = serializers.CharField(required=False, help_text="The item's `id`, when it had one.")
    scores = serializers.DictField(child=serializers.FloatField(), help_text="Calibrated probability per head label.")
    score = serializers.FloatField(help_text="The positive label's probability: the routing score.")
    predicted_label = serializers.CharField(allow_null=True)
    predicted_labels = serializers.ListField(child=serializers.CharField())


class ServedModelOut(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(help_text="al-<policy>@v<number>, as upstream decisions name it.")
    number = serializers.IntegerField()
    status = serializers.CharField()
    artifact_sha256 = serializers.CharField()
    encoder_id = serializers.CharField()
    positive_label = serializers.CharField()


class PredictOut(serializers.Serializer):
    model = ServedModelOut()
    items = PredictionOut(many=True)


class PredictView(APIView):
    permission_classes = [LeadOrScopedToken]
    token_scopes = PREDICT_SCOPES

    @extend_schema(
        operation_id="models_predict",
        summary="Score items with a policy's model (champion unless a version is named; needs models:predict)",
        description=(
            f"Up to {MAX_BATCH} items per call, each `{{'text': …}}` (at most {MAX_TEXT_CHARS:,} characters, "
            "not blank, valid Unicode, no NUL) or `{'embedding': […]}` of the width the model reads (finite "
            "numbers). MiniLM models reuse the cached vector of a text any item already had. Scores equal those "
            "of the version's bundle loaded with `activelearning.bundle.load_bundle` for the same batch. 404 when "
            "the policy has no champion (or no such version)."
        ),
        request=PredictIn,
        responses={200: PredictOut, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request, policy_key: str) -> Response:
        data = PredictIn(data=request.data)
        data.is_valid(raise_exception=True)
        version = _served_version(policy_key, data.validated_data.get("version"))
        rows = model_predict(version=version, items=data.validated_data["items"])
        model = {
            "id": version.pk,
            "model": f"{version.model_name}@{version.version_label}",
            "number": version.number,
            "status": version.status,
            "artifact_sha256": version.artifact_sha256,
            "encoder_id": version.encoder_id,
            "positive_label": version.positive_label,
        }
        return Response({"model": model, "items": rows})


def _served_version(policy_key: str, number: int | None) -> ModelVersion:
    versions = ModelVersion.objects.select_related("policy").filter(policy__key=policy_key)
    if number is not None:
        version = versions.filter(number=number).first()
        if version is None:
            raise exceptions.NotFound(f"Policy {policy_key!r} has no model version {number}.")
        return version
    version = versions.filter(status=ModelStatus.CHAMPION).first()
    if version is None:
        raise exceptions.NotFound(
            f"Policy {policy_key!r} has no champion model to serve; name a version, or promote one first."
        )
    return version


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


class DeployIn(serializers.Serializer):
    mode = serializers.ChoiceField(
        choices=DeploymentMode.values, help_text="shadow: decisions recorded, routing nothing."
    )
    shadow_days = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_SHADOW_DAYS, help_text="Shadow period; AL_SHADOW_DAYS by default."
    )


class DeploymentOut(serializers.ModelSerializer):
    """A policy's deployment: model version ids live, in shadow, and what rollback restores."""

    policy = serializers.CharField(source="policy.key")

    class Meta:
        model = ModelDeployment
        fields = [
            "policy",
            "live",
            "live_since",
            "shadow",
            "shadow_since",
            "shadow_until",
            "previous_live",
            "updated_at",
        ]


SWITCH_RESPONSES = {
    200: DeploymentOut,
    400: ErrorSerializer,
    403: ErrorSerializer,
    404: ErrorSerializer,
    409: ErrorSerializer,
}


class ModelDeployView(APIView):
    permission_classes = [LeadPerson]

    @extend_schema(
        operation_id="models_deploy",
        summary="Put a model version in shadow or live (audited); live keeps the version before it for rollback",
        request=DeployIn,
        responses=SWITCH_RESPONSES,
    )
    def post(self, request: Request, model_id: int) -> Response:
        version = get_object_or_404(ModelVersion, pk=model_id)
        data = DeployIn(data=request.data)
        data.is_valid(raise_exception=True)
        deployment = model_deploy(
            version_id=version.pk,
            mode=data.validated_data["mode"],
            actor=token_actor(request),
            shadow_days=data.validated_data.get("shadow_days"),
        )
        return Response(DeploymentOut(ModelDeployment.objects.select_related("policy").get(pk=deployment.pk)).data)


class ModelRollbackView(APIView):
    permission_classes = [LeadPerson]

    @extend_schema(
        operation_id="models_rollback",
        summary="Make the policy's previous live model version live again (audited); 409 when there is none",
        request=None,
        responses=SWITCH_RESPONSES,
    )
    def post(self, request: Request, policy_key: str) -> Response:
        policy = get_object_or_404(Policy, key=policy_key)
        deployment = model_rollback(policy_id=policy.pk, actor=token_actor(request))
        return Response(DeploymentOut(ModelDeployment.objects.select_related("policy").get(pk=deployment.pk)).data)


class WeightedShareOut(serializers.Serializer):
    n = serializers.IntegerField(help_text="Audited items with gold.")
    positives = serializers.IntegerField(help_text="Of them, violations.")
    n_eff = serializers.FloatField(help_text="Kish effective sample size (Σw)² / Σw².")
    total_weight = serializers.FloatField(help_text="Σ 1/propensity: the decisions the audited items stand for.")
    estimate = serializers.FloatField(allow_null=True, help_text="Hájek estimate; null without audited items.")
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    unweighted = serializers.FloatField(allow_null=True, help_text="Plain share, ignoring propensities (biased).")
    interval_n = serializers.FloatField(help_text="The n the Wilson interval was taken on.")
    reason = serializers.CharField(help_text="Why there is no estimate, when there is none.")


class AppealsOut(serializers.Serializer):
    decided = serializers.IntegerField()
    overturned = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)


class OnlineWeekOut(serializers.Serializer):
    week = serializers.CharField(help_text='ISO week of the decisions, "2026-W14".')
    week_start = serializers.DateField()
    decisions = serializers.IntegerField()
    auto_enforced = serializers.IntegerField()
    auto_cleared = serializers.IntegerField()
    sampled_enforced = serializers.IntegerField(help_text="Auto-enforced, sampled into audit, labelled or not.")
    sampled_cleared = serializers.IntegerField()
    precision = WeightedShareOut(help_text="Violations among auto-enforced items.")
    clear_miss_rate = WeightedShareOut(help_text="Violations among auto-cleared items.")
    appeals = AppealsOut(help_text="Decided appeals of this week's automatic actions; 95 % Wilson interval.")
    alert = serializers.BooleanField(help_text="The precision interval's upper bound is below the target.")


class CalibrationBinOut(serializers.Serializer):
    low = serializers.FloatField()
    high = serializers.FloatField()
    n = serializers.IntegerField()
    weight = serializers.FloatField()
    mean_score = serializers.FloatField()
    observed = serializers.FloatField()


class CalibrationOut(serializers.Serializer):
    measured_on = serializers.CharField()
    ece = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    n_eff = serializers.FloatField()
    bins = CalibrationBinOut(many=True)


class OnlineModelOut(serializers.Serializer):
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    target_precision = serializers.FloatField()
    target_source = serializers.CharField()
    alert = serializers.BooleanField()
    weeks = OnlineWeekOut(many=True)
    calibration = CalibrationOut()


class OnlineMetricsOut(serializers.Serializer):
    policy = serializers.CharField()
    since = serializers.DateField()
    violating_label = serializers.CharField()
    estimator = serializers.CharField()
    interval = serializers.CharField()
    measured_on = serializers.CharField()
    models = OnlineModelOut(many=True)


class OnlineMetricsQuery(serializers.Serializer):
    policy = serializers.SlugField(help_text="Policy key.")
    weeks = serializers.IntegerField(required=False, min_value=1, max_value=MAX_WEEKS, default=DEFAULT_WEEKS)
    versions = serializers.IntegerField(required=False, min_value=1, max_value=50, default=6)


class OnlineMetricsView(APIView):
    """Online figures of a policy's models per ISO week (see activelearning.services.online_metrics)."""

    permission_classes = [LeadOrModelsReadToken]

    @extend_schema(
        operation_id="online_metrics_retrieve",
        summary="Precision of automatic actions, clear misses, appeal overturns and calibration, per model and week",
        parameters=[OnlineMetricsQuery],
        responses={200: OnlineMetricsOut, 400: ErrorSerializer},
    )
    def get(self, request: Request) -> Response:
        query = OnlineMetricsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        policy = Policy.objects.filter(key=query.validated_data["policy"]).first()
        if policy is None:
            raise serializers.ValidationError({"policy": f"unknown policy {query.validated_data['policy']!r}"})
        metrics = online_metrics_compute(
            policy=policy, weeks=query.validated_data["weeks"], versions=query.validated_data["versions"]
        )
        return Response(OnlineMetricsOut(metrics.as_dict()).data)


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
