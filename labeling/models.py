"""Policies and their immutable versions.

A label always references a `PolicyVersion`: the guideline and the label schema in force when it
was given. Versions are never edited (the database refuses it); a change is a new version.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone


class Policy(models.Model):
    key = models.SlugField(max_length=64, unique=True, help_text="Stable identifier used by APIs.")
    name = models.CharField(max_length=200)
    guideline = models.TextField(blank=True, help_text="Current guideline draft, Markdown.")
    severity_weight = models.FloatField(default=1.0, help_text="Relative harm of a miss; multiplies queue priority.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(condition=models.Q(severity_weight__gt=0), name="policy_severity_weight_positive")
        ]

    def __str__(self) -> str:
        return self.key

    def current_version(self, at: Any = None) -> PolicyVersion | None:
        """The version in force at `at` (default now): the newest one already effective."""
        at = at or timezone.now()
        return self.versions.filter(effective_at__lte=at).order_by("-number").first()


def check_label_schema(schema: Any) -> None:
    """Validate a label schema; raise ValidationError naming the first problem.

    Shape: {"labels": [{"value": "violating", "title": "Violating", "description": "..."}, ...],
            "allow_multiple": false, "severity_levels": ["low", "medium", "high"]}
    """
    if not isinstance(schema, dict):
        raise ValidationError("label schema must be an object")
    labels = schema.get("labels")
    if not isinstance(labels, list) or len(labels) < 2:
        raise ValidationError("label schema needs a 'labels' list with at least two labels")
    seen: set[str] = set()
    for index, label in enumerate(labels):
        if not isinstance(label, dict) or not isinstance(label.get("value"), str):
            raise ValidationError(f"labels[{index}] must be an object with a string 'value'")
        value = label["value"]
        if not value or not value.replace("_", "").replace("-", "").isalnum():
            raise ValidationError(f"labels[{index}].value {value!r} must be a slug")
        if value in seen:
            raise ValidationError(f"label {value!r} appears twice")
        seen.add(value)
    if not isinstance(schema.get("allow_multiple", False), bool):
        raise ValidationError("'allow_multiple' must be true or false")
    levels = schema.get("severity_levels", [])
    if not isinstance(levels, list) or not all(isinstance(level, str) for level in levels):
        raise ValidationError("'severity_levels' must be a list of strings")
    unknown = set(schema) - {"labels", "allow_multiple", "severity_levels"}
    if unknown:
        raise ValidationError(f"unknown label schema keys: {', '.join(sorted(unknown))}")


class PolicyVersion(models.Model):
    """One immutable version of a policy: guideline text and label schema at that time."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    guideline = models.TextField(help_text="Guideline text in Markdown, as of this version.")
    label_schema = models.JSONField(validators=[check_label_schema])
    effective_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="policyversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.policy.key} v{self.number}"

    @property
    def label_values(self) -> list[str]:
        return [label["value"] for label in self.label_schema["labels"]]


class AnnotationSource(models.TextChoices):
    WORKSPACE = "workspace", "Review workspace"
    API = "api", "REST API"
    LABEL_STUDIO = "label_studio", "Label Studio"


class Annotation(models.Model):
    """One reviewer's judgement of one task, under the policy version they were shown.

    Never edited; an undo within the short window sets `retracted_at`, and the reviewer may then
    label the item again. A reviewer has at most one live annotation per (item, policy).
    """

    task = models.ForeignKey("reviewapp.ReviewTask", on_delete=models.PROTECT, related_name="annotations")
    item = models.ForeignKey("reviewapp.ContentItem", on_delete=models.PROTECT, related_name="annotations")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="annotations")
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="annotations")
    reviewer = models.ForeignKey("auth.User", on_delete=models.PROTECT, related_name="annotations")
    submission_id = models.UUIDField(unique=True, help_text="Client-generated; makes retries idempotent.")
    labels = models.JSONField(help_text="Label values from the policy version's schema.")
    severity = models.CharField(max_length=50, blank=True)
    rationale = models.TextField(blank=True)
    handle_time_ms = models.PositiveIntegerField(help_text="From render to submit, capped by the lease time.")
    late = models.BooleanField(default=False, help_text="Submitted after the reviewer's lease had expired.")
    source = models.CharField(max_length=20, choices=AnnotationSource.choices, default=AnnotationSource.WORKSPACE)
    created_at = models.DateTimeField(db_default=Now())
    retracted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "policy", "reviewer"],
                condition=models.Q(retracted_at__isnull=True),
                name="annotation_one_live_per_reviewer",
            )
        ]
        indexes = [models.Index(fields=["reviewer", "created_at"], name="annotation_reviewer_time")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} → {self.labels} on task {self.task_id}"
