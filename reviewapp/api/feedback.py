"""REST for a reviewer's feedback: their outcomes, an item's comments, their notifications.

A signed-in person or a personal token with `tasks:write` (ActsForPerson): everything here is the
person's own (outcomes, notifications) or an item thread they may read (404 otherwise).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.services.outcomes import outcomes_for

from ..models import ContentItem, Notification
from ..services.comments import MAX_BODY, item_comment_create, item_comments, item_visible_to
from ..services.notifications import notifications_mark_read, notifications_unread_count
from .auth import ActsForPerson
from .serializers import ErrorSerializer

NOTIFICATIONS_LISTED = 100


class OutcomeOut(serializers.Serializer):
    item_id = serializers.IntegerField()
    source = serializers.CharField(source="gold.item.source")
    external_id = serializers.CharField(source="gold.item.external_id")
    excerpt = serializers.CharField(help_text="The item's title or text, cut short; untrusted.")
    policy = serializers.CharField(source="gold.policy.key")
    your_labels = serializers.ListField(
        child=serializers.CharField(), source="annotation.labels", help_text="Label values."
    )
    final_labels = serializers.ListField(child=serializers.CharField(), source="gold.labels", help_text="Label values.")
    decided_by = serializers.CharField(help_text="'appeal', or the lead's username.")
    note = serializers.CharField(help_text="The lead's note; may be empty.")
    decided_at = serializers.DateTimeField()


class OutcomesOut(serializers.Serializer):
    outcomes = OutcomeOut(many=True)


class CommentIn(serializers.Serializer):
    body = serializers.CharField(max_length=MAX_BODY, help_text="Plain text; `@username` notifies that person.")


class CommentOut(serializers.Serializer):
    id = serializers.IntegerField()
    author = serializers.CharField(source="author.username")
    body = serializers.CharField(help_text="Untrusted text, as typed.")
    mentions = serializers.ListField(child=serializers.IntegerField(), help_text="User ids notified.")
    created_at = serializers.DateTimeField()


class CommentsOut(serializers.Serializer):
    comments = CommentOut(many=True)


class NotificationOut(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(help_text="mention, sent_back, overturned, paused, …")
    text = serializers.CharField()
    url = serializers.CharField(help_text="A path in the app; may be empty.")
    created_at = serializers.DateTimeField()
    read_at = serializers.DateTimeField(allow_null=True)


class NotificationsOut(serializers.Serializer):
    unread = serializers.IntegerField()
    notifications = NotificationOut(many=True)


class MarkReadIn(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=1000,
        help_text="Notifications to mark read; all unread ones when left out.",
    )


class MarkedOut(serializers.Serializer):
    marked = serializers.IntegerField()


class _PersonView(APIView):
    permission_classes = [ActsForPerson]
    required_scope = "tasks:write"


class OutcomesView(_PersonView):
    @extend_schema(
        operation_id="outcomes_list",
        summary="Your answers that a lead's decision or an appeal overturned, newest first",
        responses={200: OutcomesOut},
    )
    def get(self, request: Request) -> Response:
        return Response(OutcomesOut({"outcomes": outcomes_for(reviewer=request.user)}).data)


class ItemCommentsView(_PersonView):
    def _item(self, request: Request, item_id: int) -> ContentItem:
        item = ContentItem.objects.filter(pk=item_id).first()
        if item is None or not item_visible_to(user=request.user, item_id=item_id):
            raise NotFound("No such item.")
        return item

    @extend_schema(
        operation_id="item_comments_list",
        summary="An item's comment thread, oldest first (leads, and reviewers who worked on the item)",
        responses={200: CommentsOut, 404: ErrorSerializer},
    )
    def get(self, request: Request, item_id: int) -> Response:
        item = self._item(request, item_id)
        return Response(CommentsOut({"comments": item_comments(item_id=item.pk)}).data)

    @extend_schema(
        operation_id="item_comments_create",
        summary="Comment on an item; @username mentions notify people who may read the thread",
        request=CommentIn,
        responses={201: CommentOut, 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def post(self, request: Request, item_id: int) -> Response:
        item = self._item(request, item_id)
        data = CommentIn(data=request.data)
        data.is_valid(raise_exception=True)
        comment = item_comment_create(item_id=item.pk, author=request.user, body=data.validated_data["body"])
        return Response(CommentOut(comment).data, status=status.HTTP_201_CREATED)


class NotificationsView(_PersonView):
    @extend_schema(
        operation_id="notifications_list",
        summary="Your newest notifications (up to 100) and how many are unread",
        responses={200: NotificationsOut},
    )
    def get(self, request: Request) -> Response:
        listed = Notification.objects.filter(user=request.user).order_by("-created_at", "-pk")[:NOTIFICATIONS_LISTED]
        body = {"unread": notifications_unread_count(user=request.user), "notifications": list(listed)}
        return Response(NotificationsOut(body).data)


class NotificationsReadView(_PersonView):
    @extend_schema(
        operation_id="notifications_mark_read",
        summary="Mark your notifications read (the listed ids, or all unread ones)",
        request=MarkReadIn,
        responses={200: MarkedOut, 400: ErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        data = MarkReadIn(data=request.data)
        data.is_valid(raise_exception=True)
        marked = notifications_mark_read(user=request.user, ids=data.validated_data.get("ids"))
        return Response(MarkedOut({"marked": marked}).data)
