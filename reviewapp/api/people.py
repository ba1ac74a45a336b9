"""REST for people: a lead pauses or resumes a reviewer in a queue; a reviewer takes a queue's
onboarding set (the same services as the pages: reviewapp.services.standing, labeling.services.onboarding)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import OnboardingAttempt
from labeling.services.onboarding import (
    onboarding_answer,
    onboarding_last_finished,
    onboarding_next,
    onboarding_open_attempt,
    onboarding_review,
    onboarding_start,
)

from ..access import access_queue
from ..audit import Actor
from ..models import Queue
from ..projection import item_projection
from ..services.standing import Standing, queue_standing_for, queue_standing_pause, queue_standing_resume
from .auth import ActsForLead, ActsForPerson
from .serializers import ErrorSerializer


class StandingChangeIn(serializers.Serializer):
    queue = serializers.IntegerField(help_text="The queue's id.")
    reason = serializers.CharField(max_length=2000, help_text="Shown to the reviewer and to leads; required.")


class StandingOut(serializers.Serializer):
    queue = serializers.IntegerField(source="queue.pk")
    reviewer = serializers.IntegerField(source="reviewer_id")
    status = serializers.ChoiceField(choices=["live", "onboarding", "paused"])
    automatic = serializers.BooleanField(help_text="Paused by the honeypot rule rather than by a lead.")
    reason = serializers.CharField(help_text="Why paused; empty otherwise.")
    qualified_at = serializers.DateTimeField(allow_null=True)


class _LeadView(APIView):
    permission_classes = [ActsForLead]
    required_scope = "queues:write"


def _change(request: Request, user_id: int, *, pause: bool) -> Response:
    data = StandingChangeIn(data=request.data)
    data.is_valid(raise_exception=True)
    reviewer = User.objects.filter(pk=user_id).first()
    queue = Queue.objects.filter(pk=data.validated_data["queue"]).first()
    if reviewer is None or queue is None:
        raise Http404("No such reviewer or queue.")
    change = queue_standing_pause if pause else queue_standing_resume
    change(queue=queue, reviewer=reviewer, reason=data.validated_data["reason"], actor=Actor.of(request.user))
    return Response(StandingOut(queue_standing_for(queue=queue, reviewer=reviewer)).data)


class ReviewerPauseView(_LeadView):
    @extend_schema(
        operation_id="reviewer_pause",
        summary="Pause a reviewer in a queue (reason required); 409 when already paused",
        request=StandingChangeIn,
        responses={200: StandingOut, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request, user_id: int) -> Response:
        return _change(request, user_id, pause=True)


class ReviewerResumeView(_LeadView):
    @extend_schema(
        operation_id="reviewer_resume",
        summary="Lift a reviewer's pause in a queue (reason required); 409 when not paused",
        request=StandingChangeIn,
        responses={200: StandingOut, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request, user_id: int) -> Response:
        return _change(request, user_id, pause=False)


class OnboardingItemOut(serializers.Serializer):
    attempt = serializers.IntegerField()
    gold = serializers.IntegerField(help_text="Send it back with the answer; it says nothing of the reference.")
    position = serializers.IntegerField()
    total = serializers.IntegerField()
    policy_version = serializers.IntegerField(allow_null=True)
    labels = serializers.ListField(child=serializers.CharField(), help_text="The labels you may answer with.")
    title = serializers.CharField()
    text = serializers.CharField()


class OnboardingReviewOut(serializers.Serializer):
    gold = serializers.IntegerField(source="gold.pk")
    answer = serializers.ListField(child=serializers.CharField())
    reference = serializers.ListField(child=serializers.CharField())
    correct = serializers.BooleanField()


class OnboardingResultOut(serializers.Serializer):
    attempt = serializers.IntegerField(source="pk")
    n_correct = serializers.IntegerField()
    total = serializers.IntegerField()
    passed = serializers.BooleanField()
    review = OnboardingReviewOut(many=True)


class OnboardingOut(serializers.Serializer):
    standing = StandingOut()
    next_item = OnboardingItemOut(allow_null=True, help_text="The open attempt's next item; null without one.")
    last_result = OnboardingResultOut(allow_null=True, help_text="The last finished attempt, references included.")


class OnboardingAnswerIn(serializers.Serializer):
    attempt = serializers.IntegerField()
    gold = serializers.IntegerField()
    labels = serializers.ListField(child=serializers.CharField(max_length=100), min_length=1, max_length=20)


def _onboarding_state(queue: Queue, reviewer: Any) -> dict[str, Any]:
    attempt = onboarding_open_attempt(queue=queue, reviewer=reviewer)
    step = onboarding_next(attempt=attempt) if attempt else None
    next_item = None
    if step is not None:
        shown = item_projection(item=step.gold.item).item
        next_item = {
            "attempt": step.attempt.pk,
            "gold": step.gold.pk,
            "position": step.position,
            "total": step.total,
            "policy_version": step.version.pk if step.version else None,
            "labels": step.version.label_values if step.version else [],
            "title": shown.title,
            "text": shown.text,
        }
    last = onboarding_last_finished(queue=queue, reviewer=reviewer) if next_item is None else None
    last_result = None
    if last is not None:
        last_result = {
            "pk": last.pk,
            "n_correct": last.n_correct,
            "total": len(last.gold_ids),
            "passed": last.passed,
            "review": onboarding_review(attempt=last),
        }
    standing: Standing = queue_standing_for(queue=queue, reviewer=reviewer)
    return {"standing": standing, "next_item": next_item, "last_result": last_result}


class QueueOnboardingView(APIView):
    permission_classes = [ActsForPerson]
    required_scope = "tasks:write"

    @extend_schema(
        operation_id="queue_onboarding",
        summary="Your onboarding in a queue: standing, the next item, the last result",
        responses={200: OnboardingOut},
    )
    def get(self, request: Request, queue_id: int) -> Response:
        queue = access_queue(request.user, queue_id)
        return Response(OnboardingOut(_onboarding_state(queue, request.user)).data)

    @extend_schema(
        operation_id="queue_onboarding_start",
        summary="Start an onboarding attempt (or carry on with the open one)",
        description="409 when you may work live tasks already, when a lead paused you, or when the queue "
        "has no gold items to onboard with.",
        request=None,
        responses={200: OnboardingOut, 409: ErrorSerializer},
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = access_queue(request.user, queue_id)
        onboarding_start(queue=queue, reviewer=request.user)
        return Response(OnboardingOut(_onboarding_state(queue, request.user)).data)


class OnboardingAnswersView(APIView):
    permission_classes = [ActsForPerson]
    required_scope = "tasks:write"

    @extend_schema(
        operation_id="queue_onboarding_answer",
        summary="Answer the next item of your onboarding attempt (idempotent per item)",
        description="After the last item the attempt is scored: `last_result` then holds the reference answers.",
        request=OnboardingAnswerIn,
        responses={201: OnboardingOut, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = access_queue(request.user, queue_id)
        data = OnboardingAnswerIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            onboarding_answer(
                attempt_id=data.validated_data["attempt"],
                reviewer=request.user,
                gold_id=data.validated_data["gold"],
                labels=data.validated_data["labels"],
            )
        except OnboardingAttempt.DoesNotExist:
            raise Http404("No such onboarding attempt.") from None
        state = _onboarding_state(queue, request.user)
        return Response(OnboardingOut(state).data, status=status.HTTP_201_CREATED)
