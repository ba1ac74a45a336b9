"""Serializers that describe the ingest API in the OpenAPI schema.

Rows are validated by `reviewapp.services.validation` (fast, set-based ingest); these classes
document the same fields, and tests/reviewapp/test_api_schema.py keeps both in step.
"""

from __future__ import annotations

from rest_framework import serializers

from ..models import Modality, RoutingOutcome


class ContextTurnSerializer(serializers.Serializer):
    author = serializers.CharField(required=False)
    text = serializers.CharField()


class EvidenceSpanSerializer(serializers.Serializer):
    start = serializers.IntegerField(min_value=0)
    end = serializers.IntegerField(min_value=1)
    label = serializers.CharField(required=False, max_length=100)


class DecisionRowSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=100, help_text="Upstream system of the content.")
    external_id = serializers.CharField(max_length=255, help_text="The content's id upstream.")
    modality = serializers.ChoiceField(choices=Modality.choices, required=False, default=Modality.TEXT)
    title = serializers.CharField(required=False, allow_blank=True)
    text = serializers.CharField(required=False, allow_blank=True, max_length=100_000)
    media_urls = serializers.ListField(child=serializers.URLField(), required=False, max_length=20)
    context = ContextTurnSerializer(many=True, required=False, help_text="Earlier conversation turns.")
    metadata = serializers.DictField(required=False, help_text="language, region, surface, …")
    reach = serializers.IntegerField(min_value=0, required=False, help_text="Audience size upstream.")
    embedding = serializers.ListField(child=serializers.FloatField(), required=False, max_length=4096)
    author = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=255,
        help_text=(
            "The upstream author's (or entity's) key, pseudonymous: links the author's items for case history. "
            "Kept from the item's first message, like the content."
        ),
    )
    policy = serializers.SlugField(help_text="Policy key, e.g. 'harassment'.")
    model_name = serializers.CharField(max_length=100)
    model_version = serializers.CharField(max_length=100)
    score = serializers.FloatField(min_value=0, max_value=1, help_text="Probability of a violation.")
    predicted_label = serializers.CharField(required=False, max_length=100)
    evidence_spans = EvidenceSpanSerializer(many=True, required=False)
    decided_at = serializers.DateTimeField(required=False)


class DecisionBatchSerializer(serializers.Serializer):
    decisions = DecisionRowSerializer(many=True)


class RowResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "duplicate"])
    item_id = serializers.IntegerField()
    decision_id = serializers.IntegerField()
    routing_outcome = serializers.ChoiceField(choices=RoutingOutcome.choices)
    audit_sampled = serializers.BooleanField()
    task_id = serializers.IntegerField(allow_null=True)


class RowErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class IngestResponseSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Rows stored now or already stored before.")
    created = serializers.IntegerField()
    rejected = serializers.IntegerField()
    results = RowResultSerializer(many=True)
    errors = RowErrorSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    errors = serializers.DictField(required=False, help_text="Validation errors: messages by field (nested).")
