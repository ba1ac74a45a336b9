"""REST for external review tools: claim work, renew or release a lease, submit annotations."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import AnnotationSource
from labeling.services.annotations import annotation_submit

from ..access import access_queue, access_task
from ..models import AssignmentReason, TaskAssignment
from ..projection import task_projection
from ..services.assignments import task_assignment_notes
from ..services.claims import task_claim_next, task_escalate, task_lease_renew, task_release
from ..services.standing import queue_standing_require
from .auth import ActsForPerson
from .serializers import ErrorSerializer


class ContextTurnOut(serializers.Serializer):
    author = serializers.CharField()
    text = serializers.CharField()


class ItemOut(serializers.Serializer):
    source = serializers.CharField()
    external_id = serializers.CharField()
    modality = serializers.CharField()
    title = serializers.CharField()
    text = serializers.CharField()
    media_urls = serializers.ListField(child=serializers.CharField())
    context = ContextTurnOut(many=True)
    metadata = serializers.DictField(help_text="Without reference labels (source_label, crowd or gold answers).")
    reach = serializers.IntegerField()


class PolicyVersionOut(serializers.Serializer):
    id = serializers.IntegerField()
    policy = serializers.CharField(source="policy.key")
    number = serializers.IntegerField()
    guideline = serializers.CharField()
    label_schema = serializers.DictField()


class ModelEvidenceOut(serializers.Serializer):
    model_name = serializers.CharField()
    model_version = serializers.CharField()
    score = serializers.FloatField()
    predicted_label = serializers.CharField()
    evidence_spans = serializers.ListField(child=serializers.DictField())


class HiddenCharactersOut(serializers.Serializer):
    field = serializers.CharField(help_text="Where the reviewer sees it, e.g. 'title', 'conversation turn 1 author'.")
    characters = serializers.ListField(child=serializers.CharField(), help_text="e.g. 'right-to-left override'.")


class AppealShownOut(serializers.Serializer):
    statement = serializers.CharField(help_text="The user's words; untrusted.")
    appealed_at = serializers.DateTimeField()
    original_labels = serializers.ListField(child=serializers.CharField(), help_text="By their display names.")
    by_model = serializers.BooleanField(help_text="True: an automatic action is contested; false: a gold label.")
    outcome_source = serializers.CharField(help_text="How the contested gold label was reached; empty for a model.")
    model_hidden = serializers.BooleanField(help_text="A model acted; this blind-review queue hides which.")
    model_name = serializers.CharField(help_text="Empty on blind-review queues.")
    model_version = serializers.CharField()
    score = serializers.FloatField(allow_null=True, help_text="Null on blind-review queues.")


class AssignmentNoteOut(serializers.Serializer):
    reason = serializers.ChoiceField(
        choices=AssignmentReason.choices, help_text="`sent_back`: your earlier answer was withdrawn; answer again."
    )
    note = serializers.CharField(help_text="The lead's note; untrusted text.")
    created_at = serializers.DateTimeField()


class TaskOut(serializers.Serializer):
    """A claimed task as the reviewer may see it: renders `reviewapp.projection.ReviewerTask`, and
    the lead's notes of the claiming reviewer's open assignments (context `assignment_notes`)."""

    id = serializers.IntegerField()
    queue = serializers.IntegerField(source="queue_id")
    due_at = serializers.DateTimeField()
    lease_expires_at = serializers.DateTimeField()
    annotation_count = serializers.IntegerField()
    item = ItemOut()
    policy_version = PolicyVersionOut(allow_null=True)
    model = ModelEvidenceOut(allow_null=True, help_text="Null on blind-review queues and without a model decision.")
    hidden_characters = HiddenCharactersOut(many=True, help_text="Invisible formatting characters, per field.")
    appeals = AppealShownOut(
        many=True, help_text="On a task opened for an appeal: the contested outcome and the user's statement."
    )
    assignment_notes = serializers.SerializerMethodField(
        help_text="A lead sent this task back to you, or assigned it to you, with a note: read it before answering. "
        "Empty otherwise."
    )

    @extend_schema_field(AssignmentNoteOut(many=True))
    def get_assignment_notes(self, task: object) -> list[dict[str, object]]:
        notes: list[TaskAssignment] = self.context.get("assignment_notes", [])
        return AssignmentNoteOut(notes, many=True).data


class AnnotationIn(serializers.Serializer):
    submission_id = serializers.UUIDField(help_text="Generate one per answer; retries with it are no-ops.")
    labels = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1, max_length=20)
    severity = serializers.CharField(required=False, allow_blank=True, default="", max_length=50)
    rationale = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    handle_time_ms = serializers.IntegerField(required=False, min_value=0, allow_null=True, default=None)
    policy_version = serializers.IntegerField(required=False, allow_null=True, default=None)


class AnnotationOut(serializers.Serializer):
    id = serializers.IntegerField(source="annotation.pk")
    created = serializers.BooleanField()
    task_completed = serializers.BooleanField()
    labels = serializers.ListField(source="annotation.labels", child=serializers.CharField())
    late = serializers.BooleanField(source="annotation.late")


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=200)


class NoteIn(serializers.Serializer):
    note = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")


class LeaseOut(serializers.Serializer):
    lease_expires_at = serializers.DateTimeField()


class _ReviewerView(APIView):
    permission_classes = [ActsForPerson]
    required_scope = "tasks:write"


class QueueClaimView(_ReviewerView):
    @extend_schema(
        operation_id="queue_claim",
        summary="Claim the next task of a queue (or get back the one you hold)",
        request=None,
        description="409 when you may not work live tasks in this queue: `standing` says why "
        "(`onboarding`: pass its onboarding set first; `paused`: `detail` gives the reason).",
        responses={
            200: TaskOut,
            204: OpenApiResponse(description="Nothing to claim right now."),
            409: ErrorSerializer,
        },
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = access_queue(request.user, queue_id)
        queue_standing_require(queue=queue, reviewer=request.user)
        claim = task_claim_next(reviewer=request.user, queue=queue)
        if claim is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        task = claim.task
        notes = task_assignment_notes(task=task, reviewer=request.user)
        shown = task_projection(task=task, version=task.policy.current_version())
        return Response(TaskOut(shown, context={"assignment_notes": notes}).data)


class TaskAnnotationsView(_ReviewerView):
    @extend_schema(
        operation_id="task_annotate",
        summary="Submit an annotation (idempotent by submission_id)",
        description="201 when recorded now, 200 when this submission_id was already recorded, 409 when "
        "the answer could not be accepted (the answer is kept in the audit log): only the reviewer holding "
        "the task's live lease may answer, or, late, the one who held its most recent lease while nobody "
        "holds it; never a reviewer who skipped the task or was never served it (claim it first), and "
        "never once the item is decided. 400 for labels the policy version does not allow.",
        request=AnnotationIn,
        responses={201: AnnotationOut, 200: AnnotationOut, 400: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = access_task(request.user, task_id)
        data = _valid(AnnotationIn, request.data)
        result = annotation_submit(
            task_id=task.pk,
            reviewer=request.user,
            submission_id=data["submission_id"],
            labels=data["labels"],
            severity=data["severity"],
            rationale=data["rationale"],
            handle_time_ms=data["handle_time_ms"],
            policy_version_id=data["policy_version"],
            source=AnnotationSource.API,
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        return Response(AnnotationOut(result).data, status=code)


class TaskLeaseView(_ReviewerView):
    @extend_schema(
        operation_id="task_lease_renew",
        summary="Renew your lease (heartbeat)",
        request=None,
        responses={200: LeaseOut, 409: ErrorSerializer},
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = access_task(request.user, task_id)
        expires = task_lease_renew(task_id=task.pk, reviewer=request.user)
        return Response({"lease_expires_at": expires})


class TaskReleaseView(_ReviewerView):
    @extend_schema(
        operation_id="task_release",
        summary="Skip a task, with a reason",
        request=ReasonIn,
        responses={204: None, 400: ErrorSerializer},
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = access_task(request.user, task_id)
        data = _valid(ReasonIn, request.data)
        task_release(task_id=task.pk, reviewer=request.user, reason=data["reason"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class TaskEscalateView(_ReviewerView):
    @extend_schema(
        operation_id="task_escalate",
        summary="Escalate a task to policy leads",
        request=NoteIn,
        responses={204: None, 409: ErrorSerializer},
    )
    def post(self, request: Request, task_id: int) -> Response:
        task = access_task(request.user, task_id)
        data = _valid(NoteIn, request.data)
        task_escalate(task_id=task.pk, reviewer=request.user, note=data["note"])
        return Response(status=status.HTTP_204_NO_CONTENT)


def _valid(serializer_class: type[serializers.Serializer], data: object) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
