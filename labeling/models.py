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

from .scales import ScaleError, schema_scales


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
        """The version in force at `at` (default: the database's now, whatever this process's clock says)."""
        at = at or Now()
        return self.versions.filter(effective_at__lte=at).order_by("-number").first()


def check_label_schema(schema: Any) -> None:
    """Validate a label schema; raise ValidationError naming the first problem.

    Shape: {"labels": [{"value": "violating", "title": "Violating", "description": "..."}, ...],
            "allow_multiple": false, "severity_levels": ["low", "medium", "high"],
            "scales": {"label": "nominal", "severity": "ordinal"}}
    Severity levels are listed from least to most severe. "scales" (optional) declares how
    agreement treats each field: nominal, ordinal or interval (see `labeling.scales`).
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
    unknown = set(schema) - {"labels", "allow_multiple", "severity_levels", "scales"}
    if unknown:
        raise ValidationError(f"unknown label schema keys: {', '.join(sorted(unknown))}")
    try:
        schema_scales(schema)
    except ScaleError as error:
        raise ValidationError(str(error)) from None


def readable_key(key: str) -> str:
    """A schema key as people read it: `very_strong` → "Very strong" (for keys without a title)."""
    return key.replace("_", " ").replace("-", " ").capitalize()


class PolicyVersion(models.Model):
    """One immutable version of a policy: guideline text and label schema at that time."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    guideline = models.TextField(help_text="Guideline text in Markdown, as of this version.")
    label_schema = models.JSONField(validators=[check_label_schema])
    effective_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    change_summary = models.TextField(
        blank=True, db_default="", help_text="What changed from the previous version, shown once to reviewers."
    )

    class Meta:
        ordering = ["policy", "-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="policyversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.policy.key} v{self.number}"

    @property
    def label_values(self) -> list[str]:
        return [label["value"] for label in self.label_schema["labels"]]

    def label_title(self, value: str) -> str:
        """The name people see for a label value: its schema title, else the value made readable.

        A value this version's schema does not know (a retired label) is shown as stored.
        """
        for label in self.label_schema["labels"]:
            if label["value"] == value:
                return label.get("title") or readable_key(value)
        return value


class DraftStatus(models.TextChoices):
    DRAFT = "draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published"


class PolicyDraft(models.Model):
    """A proposed next version of a policy (guideline and label schema), not yet in force.

    A draft can be evaluated before it is published (an LLM reviewer labels a gold sample under
    the draft and under the version it was drafted from); publishing creates the PolicyVersion
    and records it in `published_version`, after which the draft is read-only.
    """

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="drafts")
    base_version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=200, help_text="What the draft changes, in a few words.")
    guideline = models.TextField(help_text="Guideline text in Markdown.")
    label_schema = models.JSONField(validators=[check_label_schema])
    published_version = models.OneToOneField(
        PolicyVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="draft"
    )
    status = models.CharField(max_length=10, choices=DraftStatus.choices, db_default=DraftStatus.DRAFT)
    review_requested_by = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    review_requested_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.policy.key} draft {self.pk}: {self.title}"

    @property
    def label_values(self) -> list[str]:
        return [label["value"] for label in self.label_schema["labels"]]


class AnnotationSource(models.TextChoices):
    WORKSPACE = "workspace", "Review workspace"
    API = "api", "REST API"
    LABEL_STUDIO = "label_studio", "Label Studio"
    IMPORT = "import", "Imported dataset (crowd annotators)"
    LLM = "llm", "LLM reviewer (machine-made)"


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


class GoldSource(models.TextChoices):
    CONSENSUS = "consensus", "Reviewer consensus"
    ADJUDICATION = "adjudication", "Lead adjudication"
    HONEYPOT = "honeypot", "Honeypot answer key"
    APPEAL = "appeal", "Appeal outcome"


class GoldLabel(models.Model):
    """The label an item carries under a policy, with where it came from. Never edited.

    A correction is a new row with the next `version` that names the row it supersedes; the
    current gold label of (item, policy) is the one with the highest version.
    """

    item = models.ForeignKey("reviewapp.ContentItem", on_delete=models.PROTECT, related_name="gold_labels")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="gold_labels")
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="gold_labels")
    version = models.PositiveIntegerField(default=1)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    labels = models.JSONField()
    severity = models.CharField(max_length=50, blank=True)
    source = models.CharField(max_length=20, choices=GoldSource.choices)
    task = models.ForeignKey("reviewapp.ReviewTask", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    annotation_ids = models.JSONField(default=list, help_text="The annotations this label was decided from.")
    n_annotations = models.PositiveSmallIntegerField(default=0)
    agreement = models.FloatField(null=True, blank=True, help_text="Share of annotations agreeing with it.")
    adjudicator = models.ForeignKey(
        "auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="adjudicated_gold"
    )
    route = models.CharField(max_length=40, blank=True, help_text="Why the item reached people (task reason).")
    routing_outcome = models.CharField(max_length=12, blank=True, help_text="What automation did, if anything.")
    sampling_propensity = models.FloatField(default=1.0, help_text="Probability the item was sent to people.")
    note = models.TextField(blank=True)
    created_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "policy", "version"], name="gold_unique_version"),
            models.CheckConstraint(
                condition=models.Q(version=1, supersedes__isnull=True)
                | models.Q(version__gt=1, supersedes__isnull=False),
                name="gold_versions_chain",
            ),
        ]
        indexes = [models.Index(fields=["policy", "created_at"], name="gold_policy_created")]

    def __str__(self) -> str:
        return f"gold {self.item_id}/{self.policy_id} v{self.version} {self.labels}"


class AdjudicationReason(models.TextChoices):
    DISAGREEMENT = "disagreement", "Reviewers disagreed"
    LOW_CONFIDENCE = "low_confidence", "Weighted consensus below threshold"
    ESCALATED = "escalated", "Escalated by a reviewer"
    CONFIRM = "confirm", "Agreed; a lead confirms"


class AdjudicationStatus(models.TextChoices):
    OPEN = "open"
    DECIDED = "decided"
    SENT_BACK = "sent_back", "Sent back to reviewers"


class Adjudication(models.Model):
    """A task waiting for a policy lead's decision."""

    task = models.ForeignKey("reviewapp.ReviewTask", on_delete=models.PROTECT, related_name="adjudications")
    reason = models.CharField(max_length=20, choices=AdjudicationReason.choices)
    proposed_labels = models.JSONField(null=True, blank=True, help_text="The consensus label, where there is one.")
    confidence = models.FloatField(null=True, blank=True)
    note = models.TextField(blank=True, help_text="The reviewer's escalation note or the lead's note.")
    status = models.CharField(max_length=12, choices=AdjudicationStatus.choices, default=AdjudicationStatus.OPEN)
    decided_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    gold = models.ForeignKey(GoldLabel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task"], condition=models.Q(status="open"), name="adjudication_one_open_per_task"
            )
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="adjudication_status")]

    def __str__(self) -> str:
        return f"adjudication {self.pk} of task {self.task_id} ({self.reason}, {self.status})"


class ReliabilityFit(models.Model):
    """One Dawid–Skene fit of a policy's annotations, and whether it passed its checks.

    Append-only: each refresh adds one. Reviewer reliabilities are used (flags, weighted
    consensus, the adjudication view) only when they belong to the policy's newest fit and that
    fit passed; otherwise `problems` says, in a lead's words, why the crowd model is not used.
    """

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="reliability_fits")
    passed = models.BooleanField()
    problems = models.JSONField(default=list, help_text="Why the fit may not be used; empty when it passed.")
    n_labels = models.PositiveIntegerField()
    n_items = models.PositiveIntegerField()
    n_reviewers = models.PositiveIntegerField()
    iterations = models.PositiveIntegerField()
    converged = models.BooleanField()
    labels = models.JSONField(help_text="Class order of `priors`.")
    priors = models.JSONField(help_text="Fitted class priors; NaN is stored as null.")
    vote_shares = models.JSONField(help_text="Share of all labels in each class, same order.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["policy", "-created_at"], name="reliability_fit_latest")]

    def __str__(self) -> str:
        return f"fit {self.pk} of policy {self.policy_id}: {'passed' if self.passed else 'failed'}"


class ReviewerReliability(models.Model):
    """A reviewer's estimated confusion matrix under a policy (Dawid–Skene), refreshed periodically."""

    reviewer = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="reliabilities")
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="+")
    fit = models.ForeignKey(
        ReliabilityFit,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reliabilities",
        help_text="The checked fit this estimate comes from; null for estimates made before fits were checked.",
    )
    labels = models.JSONField(help_text="Class order of the confusion matrix rows and columns.")
    confusion = models.JSONField(help_text="P(reviewer says column | true class row).")
    accuracy = models.FloatField()
    n_items = models.PositiveIntegerField()
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "reviewer reliabilities"
        constraints = [models.UniqueConstraint(fields=["reviewer", "policy"], name="reliability_unique")]

    def __str__(self) -> str:
        return f"{self.reviewer_id}/{self.policy_id}: {self.accuracy:.2f}"


class HoneypotCheck(models.Model):
    """A reviewer's answer to a known-answer item, scored against its gold label."""

    task = models.OneToOneField("reviewapp.ReviewTask", on_delete=models.PROTECT, related_name="honeypot")
    gold = models.ForeignKey(GoldLabel, on_delete=models.PROTECT, related_name="+")
    reviewer = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    annotation = models.OneToOneField(
        Annotation, null=True, blank=True, on_delete=models.PROTECT, related_name="honeypot_check"
    )
    correct = models.BooleanField(null=True)
    created_at = models.DateTimeField(db_default=Now())
    answered_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"honeypot task {self.task_id}: {self.correct}"


class AppealStatus(models.TextChoices):
    OPEN = "open"
    UPHELD = "upheld", "Original decision upheld"
    OVERTURNED = "overturned"


class Appeal(models.Model):
    """A user's appeal against a moderation outcome; reviewed in an appeals queue."""

    item = models.ForeignKey("reviewapp.ContentItem", on_delete=models.PROTECT, related_name="appeals")
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="appeals")
    decision = models.ForeignKey(
        "reviewapp.ModelDecision", null=True, blank=True, on_delete=models.PROTECT, related_name="appeals"
    )
    original_labels = models.JSONField(help_text="What the appealed outcome said, e.g. ['violating'].")
    original_source = models.CharField(max_length=20, help_text="'model' or the gold label source.")
    external_ref = models.CharField(max_length=255, help_text="The appeal's id upstream (idempotency key).")
    statement = models.TextField(blank=True, help_text="The user's words. Untrusted.")
    task = models.ForeignKey("reviewapp.ReviewTask", null=True, on_delete=models.PROTECT, related_name="appeals")
    status = models.CharField(max_length=12, choices=AppealStatus.choices, default=AppealStatus.OPEN)
    outcome_gold = models.ForeignKey(GoldLabel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_default=Now())
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["external_ref"], name="appeal_unique_ref")]

    def __str__(self) -> str:
        return f"appeal {self.external_ref} ({self.status})"


class RelabelMode(models.TextChoices):
    NONE = "none", "Keep existing gold as it is"
    SAMPLE = "sample", "Re-review a stratified sample"
    AFFECTED = "affected", "Re-review every item whose label the change affects"


class PolicyPublication(models.Model):
    """How a version was published from a draft, and what re-review of older gold it asked for."""

    version = models.OneToOneField(PolicyVersion, on_delete=models.PROTECT, related_name="publication")
    draft = models.OneToOneField(PolicyDraft, on_delete=models.PROTECT, related_name="publication")
    previous_version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="+")
    relabel_mode = models.CharField(max_length=10, choices=RelabelMode.choices)
    relabel_sample_size = models.PositiveIntegerField(null=True, blank=True)
    relabel_queue = models.ForeignKey(
        "reviewapp.Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    relabel_tasks = models.PositiveIntegerField(default=0, help_text="Tasks opened for re-review.")
    published_by = models.ForeignKey("auth.User", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    published_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.version} published ({self.relabel_mode})"


class PolicyNoticeSeen(models.Model):
    """A reviewer was shown what changed in a policy version ("Policy updated: …"); shown once."""

    reviewer = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="+")
    policy_version = models.ForeignKey(PolicyVersion, on_delete=models.CASCADE, related_name="+")
    seen_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["reviewer", "policy_version"], name="policynotice_once")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} saw {self.policy_version_id}"


class OnboardingAttempt(models.Model):
    """A reviewer's pass through a queue's onboarding set: fixed gold items, scored when finished.

    Answers never become annotations or gold and never count in agreement figures; the reference
    labels are shown to the reviewer only after they finish.
    """

    queue = models.ForeignKey("reviewapp.Queue", on_delete=models.CASCADE, related_name="onboarding_attempts")
    reviewer = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="onboarding_attempts")
    gold_ids = models.JSONField(help_text="The gold labels of the set, in the order served.")
    pass_mark = models.FloatField(help_text="The queue's pass mark when the attempt started.")
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    n_correct = models.PositiveSmallIntegerField(null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["queue", "reviewer"],
                condition=models.Q(finished_at__isnull=True),
                name="onboarding_one_open_attempt",
            )
        ]

    def __str__(self) -> str:
        return f"onboarding {self.pk} of {self.reviewer_id} in {self.queue_id}"


class OnboardingAnswer(models.Model):
    attempt = models.ForeignKey(OnboardingAttempt, on_delete=models.CASCADE, related_name="answers")
    gold = models.ForeignKey(GoldLabel, on_delete=models.PROTECT, related_name="+")
    labels = models.JSONField()
    correct = models.BooleanField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["attempt", "gold"], name="onboarding_answer_once")]

    def __str__(self) -> str:
        return f"answer to gold {self.gold_id} in attempt {self.attempt_id}"
