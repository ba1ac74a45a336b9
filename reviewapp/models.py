"""The review workflow's data: content, model decisions, routing rules, queues, tasks, audit.

State changes happen in `reviewapp.services`, never by saving these models from views.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex, OpClass
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now, Upper


class Modality(models.TextChoices):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    MIXED = "mixed"


GRAPHIC_MODALITIES = ("image", "video", "mixed")


class ContentItem(models.Model):
    """A piece of user content, identified upstream by (source, external_id). Never edited."""

    source = models.CharField(max_length=100, help_text="Upstream system, e.g. 'comments'.")
    external_id = models.CharField(max_length=255)
    modality = models.CharField(max_length=10, choices=Modality.choices, default=Modality.TEXT)
    title = models.TextField(blank=True)
    text = models.TextField(blank=True)
    media_urls = models.JSONField(
        default=list, blank=True, help_text="http(s) URLs, shown only from allowlisted hosts."
    )
    context = models.JSONField(
        default=list, blank=True, help_text="Earlier turns: [{'author': ..., 'text': ...}, ...]."
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="language, region, surface, ...")
    reach = models.BigIntegerField(default=0, help_text="Views or audience size upstream.")
    embedding = ArrayField(models.FloatField(), null=True, blank=True)
    author_key = models.CharField(
        max_length=255,
        blank=True,
        db_default="",
        help_text="Upstream author or entity id (pseudonymous), for case history; empty when not sent.",
    )
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="contentitem_unique_source_id"),
            models.CheckConstraint(condition=Q(reach__gte=0), name="contentitem_reach_nonnegative"),
        ]
        indexes = [
            # Item search (reviewapp.services.search): newest first, keyset-paginated on (created_at, id);
            # an exact external id without its source; a case-insensitive substring of the text
            # (trigrams of UPPER(text), the expression Django's `icontains` compares).
            models.Index(fields=["created_at", "id"], name="contentitem_received"),
            models.Index(fields=["external_id"], name="contentitem_external_id"),
            GinIndex(OpClass(Upper("text"), name="gin_trgm_ops"), name="contentitem_text_trgm"),
            # Case history: an author's other items (most items carry no author key).
            models.Index(
                fields=["source", "author_key", "created_at"], name="contentitem_author", condition=~Q(author_key="")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.external_id}"

    @property
    def is_graphic(self) -> bool:
        """Visual media, or flagged graphic upstream: blurred until revealed, counted when revealed."""
        return self.metadata.get("graphic") is True or (self.modality in GRAPHIC_MODALITIES and bool(self.media_urls))


class RoutingOutcome(models.TextChoices):
    AUTO_ACTION = "auto_action", "Auto-enforced"
    AUTO_CLEAR = "auto_clear", "Auto-cleared"
    REVIEW = "review", "Human review"
    # A model in shadow: its decision is recorded to be compared with the live model's, and
    # routes nothing (no task, no enforcement, no audit sample).
    SHADOW = "shadow", "Shadow (routes nothing)"


class ModelDecision(models.Model):
    """One upstream model's score for one item under one policy, and where routing sent it.

    The thresholds and sampling probability in force are copied onto the row so that automation
    precision/recall can be estimated later without bias, even after the rule changes.
    """

    item = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="decisions")
    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="decisions")
    policy_version = models.ForeignKey(
        "labeling.PolicyVersion", null=True, on_delete=models.PROTECT, related_name="decisions"
    )
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=100)
    score = models.FloatField()
    predicted_label = models.CharField(max_length=100, blank=True)
    evidence_spans = models.JSONField(default=list, blank=True, help_text="[{'start', 'end', 'label'}]")
    routing_rule = models.ForeignKey("RoutingRule", null=True, on_delete=models.SET_NULL, related_name="decisions")
    routing_outcome = models.CharField(max_length=12, choices=RoutingOutcome.choices)
    auto_clear_threshold = models.FloatField(null=True)
    auto_action_threshold = models.FloatField(null=True)
    audit_sampled = models.BooleanField(default=False)
    sampling_propensity = models.FloatField(
        help_text="Probability that this decision was sent to a human (1 for the review band)."
    )
    decided_at = models.DateTimeField(null=True, blank=True, help_text="Upstream decision time.")
    received_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "policy", "model_name", "model_version"], name="decision_unique_per_model"
            ),
            models.CheckConstraint(condition=Q(score__gte=0, score__lte=1), name="decision_score_unit"),
        ]
        indexes = [models.Index(fields=["policy", "received_at"], name="decision_policy_received")]

    def __str__(self) -> str:
        return f"{self.model_name}@{self.model_version} {self.policy_id} {self.score:.3f}"


class QueueKind(models.TextChoices):
    REVIEW = "review"
    AUDIT = "audit"
    ADJUDICATION = "adjudication"
    APPEALS = "appeals"


class ConsensusRule(models.TextChoices):
    UNANIMOUS = "unanimous", "Unanimous"
    MAJORITY = "majority", "Majority with a minimum margin"
    WEIGHTED = "weighted", "Reliability-weighted (Dawid–Skene)"


class Queue(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=QueueKind.choices, default=QueueKind.REVIEW)
    sla_minutes = models.PositiveIntegerField(default=24 * 60, help_text="Due time after a task is created.")
    lease_seconds = models.PositiveIntegerField(default=600, help_text="How long a claim lasts.")
    required_annotations = models.PositiveSmallIntegerField(default=1)
    blind_review = models.BooleanField(default=False, help_text="Hide model scores from reviewers.")
    graphic_daily_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most graphic items one reviewer is given per day here; empty: no cap."
    )
    consensus_rule = models.CharField(max_length=12, choices=ConsensusRule.choices, default=ConsensusRule.MAJORITY)
    min_margin = models.FloatField(
        default=0.0, help_text="Majority rule: (top votes − runner-up votes) / votes must exceed this."
    )
    min_confidence = models.FloatField(
        default=0.8, help_text="Weighted rule: posterior probability the consensus label needs."
    )
    adaptive = models.BooleanField(
        default=False, help_text="On disagreement, ask more reviewers (up to max_annotations) before a lead."
    )
    max_annotations = models.PositiveSmallIntegerField(default=3)
    auto_gold = models.BooleanField(
        default=True, help_text="Agreed labels become gold directly; otherwise a lead confirms them."
    )
    honeypot_rate = models.FloatField(default=0.0, help_text="Share of served items that are known-answer checks.")
    onboarding_size = models.PositiveSmallIntegerField(
        default=0, help_text="Gold items a reviewer must answer before live work here; 0: no onboarding."
    )
    onboarding_pass_mark = models.FloatField(default=0.8, help_text="Share of the onboarding set to answer right.")
    pause_below_accuracy = models.FloatField(
        null=True,
        blank=True,
        help_text="Pause a reviewer here when live honeypot accuracy over the window falls below this; empty: never.",
    )
    pause_window = models.PositiveSmallIntegerField(
        default=20, help_text="How many of a reviewer's latest honeypot answers the pause rule reads."
    )
    show_author_history = models.BooleanField(
        default=True, help_text="Show reviewers the author's prior violations (never on blind queues)."
    )
    is_active = models.BooleanField(default=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="review_queues")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(required_annotations__gte=1, required_annotations__lte=5),
                name="queue_required_annotations_1_5",
            ),
            models.CheckConstraint(condition=Q(lease_seconds__gte=30), name="queue_lease_at_least_30s"),
            models.CheckConstraint(
                condition=Q(max_annotations__gte=models.F("required_annotations"), max_annotations__lte=5),
                name="queue_max_annotations_range",
            ),
            models.CheckConstraint(
                condition=Q(
                    min_margin__gte=0,
                    min_margin__lt=1,
                    min_confidence__gt=0,
                    min_confidence__lte=1,
                    honeypot_rate__gte=0,
                    honeypot_rate__lt=1,
                ),
                name="queue_consensus_parameters_range",
            ),
            models.CheckConstraint(
                condition=Q(onboarding_size__lte=200, onboarding_pass_mark__gt=0, onboarding_pass_mark__lte=1)
                & (Q(pause_below_accuracy__isnull=True) | Q(pause_below_accuracy__gt=0, pause_below_accuracy__lte=1))
                & Q(pause_window__gte=1, pause_window__lte=500),
                name="queue_qualification_range",
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class RoutingRule(models.Model):
    """Thresholds for one (policy, model); model_name '*' applies to any model of the policy.

    score >= auto_action → auto-enforced; score <= auto_clear → auto-cleared; else human review.
    A null threshold turns that automatic outcome off. Automatic outcomes are sampled into the
    audit queue with the given rates.
    """

    ANY_MODEL = "*"

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="routing_rules")
    model_name = models.CharField(max_length=100, default=ANY_MODEL)
    auto_clear = models.FloatField(null=True, blank=True)
    auto_action = models.FloatField(null=True, blank=True)
    audit_rate_clear = models.FloatField(default=0.0)
    audit_rate_action = models.FloatField(default=0.0)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="+")
    audit_queue = models.ForeignKey(
        Queue,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Where audit samples go; the review queue when empty.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "model_name"], name="routingrule_unique_policy_model"),
            models.CheckConstraint(
                condition=(Q(auto_clear__isnull=True) | Q(auto_clear__gte=0, auto_clear__lte=1))
                & (Q(auto_action__isnull=True) | Q(auto_action__gte=0, auto_action__lte=1))
                & (
                    Q(auto_clear__isnull=True) | Q(auto_action__isnull=True) | Q(auto_clear__lt=models.F("auto_action"))
                ),
                name="routingrule_thresholds_ordered",
            ),
            models.CheckConstraint(
                condition=Q(
                    audit_rate_clear__gte=0, audit_rate_clear__lte=1, audit_rate_action__gte=0, audit_rate_action__lte=1
                ),
                name="routingrule_audit_rates_unit",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id}/{self.model_name}"


class TaskReason(models.TextChoices):
    LOW_CONFIDENCE = "low_confidence"
    AUDIT_SAMPLE = "audit_sample"
    ACTIVE_LEARNING = "active_learning"
    APPEAL = "appeal"
    HONEYPOT = "honeypot"
    RELABEL = "relabel"
    BACKFILL = "backfill", "Imported for labeling"
    LABEL_ERROR = "label_error", "Likely label error"


class TaskStatus(models.TextChoices):
    OPEN = "open"
    COMPLETED = "completed"
    ESCALATED = "escalated", "Escalated to a policy lead"
    CANCELLED = "cancelled"


class ReviewTask(models.Model):
    """An item waiting for human judgement under one policy in one queue.

    An open task is claimable when it has no lease or its lease has expired. The claim path
    reads the partial index `reviewtask_claim`, which holds open tasks only, so decided tasks
    never slow it down.
    """

    item = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="tasks")
    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="tasks")
    decision = models.ForeignKey(ModelDecision, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks")
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="tasks")
    reason = models.CharField(max_length=20, choices=TaskReason.choices)
    priority = models.FloatField(default=0.0, help_text="Higher is served first.")
    due_at = models.DateTimeField()
    sampling_propensity = models.FloatField(default=1.0)
    status = models.CharField(max_length=12, choices=TaskStatus.choices, default=TaskStatus.OPEN)
    leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # the partial index below covers the only lookups: open tasks by holder
    )
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Kept when the lease ends (expiry, submit, skip): the one reviewer whose late answer may
    # still be accepted while nobody else holds the task. A task id alone is not a licence to answer.
    last_leased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,  # read only on the task row the submit has already locked
        help_text="Who held the most recent lease on this task.",
    )
    annotation_count = models.PositiveSmallIntegerField(db_default=0, help_text="Live annotations so far.")
    extra_annotations = models.PositiveSmallIntegerField(
        db_default=0, help_text="Added by adaptive redundancy or a lead sending the item back."
    )
    assigned = models.BooleanField(
        db_default=False, help_text="Reserved for the reviewers of its open assignments (TaskAssignment)."
    )
    created_at = models.DateTimeField(db_default=Now())
    completed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(
        null=True, blank=True, help_text="When consensus was taken (after the undo window closed)."
    )

    class Meta:
        indexes = [
            models.Index(
                fields=["completed_at"],
                name="reviewtask_unresolved",
                condition=Q(status="completed", resolved_at__isnull=True),
            ),
            models.Index(
                "queue",
                models.F("priority").desc(),
                "due_at",
                "id",
                name="reviewtask_claim",
                condition=Q(status="open"),
            ),
            models.Index(fields=["leased_by"], name="reviewtask_leased_by", condition=Q(status="open")),
            # Item search: items awaiting a lead (few) and tasks no model decision created (imports),
            # so that neither filter reads every task of a policy.
            models.Index(fields=["policy", "item"], name="reviewtask_escalated", condition=Q(status="escalated")),
            models.Index(fields=["policy", "item"], name="reviewtask_undecided", condition=Q(decision__isnull=True)),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "policy", "queue"], condition=Q(status="open"), name="reviewtask_one_open_per_queue"
            ),
            models.CheckConstraint(
                condition=Q(sampling_propensity__gt=0, sampling_propensity__lte=1),
                name="reviewtask_propensity_unit",
            ),
            models.CheckConstraint(
                condition=Q(leased_by__isnull=True, lease_expires_at__isnull=True)
                | Q(leased_by__isnull=False, lease_expires_at__isnull=False),
                name="reviewtask_lease_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"task {self.pk} ({self.reason}) in {self.queue_id}"

    @property
    def required_annotations(self) -> int:
        """Independent annotations this task needs; a honeypot measures one reviewer at a time."""
        if self.reason == TaskReason.HONEYPOT:
            return 1
        return self.queue.required_annotations + self.extra_annotations


class TaskSkip(models.Model):
    """A reviewer passed on a task; the claim query does not hand it to them again."""

    task = models.ForeignKey(ReviewTask, on_delete=models.PROTECT, related_name="skips")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "reviewer"], name="taskskip_once")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} skipped task {self.task_id}"


class MediaExposure(models.Model):
    """A reviewer revealed graphic media: the basis of wellness counters and daily caps."""

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    item = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="+")
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="+")
    revealed_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["reviewer", "item", "queue"], name="exposure_once")]
        indexes = [models.Index(fields=["reviewer", "revealed_at"], name="exposure_reviewer_time")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} revealed item {self.item_id}"


class AuditEvent(models.Model):
    """Append-only record of a state change. The database refuses UPDATE and DELETE on it.

    Actors are stored by id and label, not by foreign key, so that deleting a user never has to
    rewrite history.
    """

    occurred_at = models.DateTimeField(db_default=Now())
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200, help_text="username, 'token:<name>' or 'system'")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    item_id = models.BigIntegerField(null=True, blank=True, help_text="The content item concerned.")
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
            models.Index(fields=["item_id", "occurred_at"], name="audit_item"),
            models.Index(fields=["occurred_at"], name="audit_occurred"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at} {self.actor_label} {self.action} {self.object_type}:{self.object_id}"


class ServiceToken(models.Model):
    """An API token with scopes. Only a sha256 of the secret is stored; the secret is shown once."""

    SCOPES = (
        "decisions:write",
        "export:read",
        "export:write",
        "tasks:write",
        "appeals:write",
        "models:write",
        "models:read",
        "models:predict",
        "metrics:read",
        "items:read",
        "items:write",
        "policies:write",
        "queues:write",
        "adjudications:write",
    )

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, help_text="First characters, to recognise a token.")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="service_tokens",
        help_text="Person the token acts for, if any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @staticmethod
    def new_secret() -> str:
        return "rva_" + secrets.token_urlsafe(32)


class IngestJobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed", "Failed (some chunks could not be applied; their rows are kept)"


class IngestJob(models.Model):
    """A bulk ingest (POST /api/v1/ingest-jobs): rows stored on receipt, applied in chunks by workers.

    The counters move in the same transaction as the chunk they count, so they always agree with
    the chunks (see `reviewapp.services.ingest_jobs`).
    """

    token = models.ForeignKey(
        ServiceToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="ingest_jobs"
    )
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200)
    request_id = models.CharField(max_length=64, blank=True, help_text="Of the request that created the job.")
    status = models.CharField(max_length=10, choices=IngestJobStatus.choices, default=IngestJobStatus.QUEUED)
    rows_received = models.PositiveIntegerField()
    rows_queued = models.PositiveIntegerField(help_text="Rows valid on receipt, stored in chunks.")
    rows_created = models.PositiveIntegerField(default=0)
    rows_duplicate = models.PositiveIntegerField(default=0, help_text="Decisions that were already stored.")
    rows_rejected = models.PositiveIntegerField(default=0, help_text="On receipt or when applied.")
    chunks_total = models.PositiveIntegerField()
    chunks_done = models.PositiveIntegerField(default=0)
    chunks_failed = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="Rows refused on receipt: index, field, message.")
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(chunks_done__lte=models.F("chunks_total") - models.F("chunks_failed")),
                name="ingestjob_chunk_counts",
            )
        ]

    def __str__(self) -> str:
        return f"ingest job {self.pk} ({self.status})"


class IngestChunkStatus(models.TextChoices):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class IngestChunk(models.Model):
    """Up to INGEST_JOB_CHUNK_ROWS rows of a job, applied in one transaction by one task delivery."""

    job = models.ForeignKey(IngestJob, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField(help_text="Position in the job, from 0.")
    row_indexes = ArrayField(models.PositiveIntegerField(), help_text="Each row's index in the request body.")
    rows = models.JSONField(null=True, blank=True, help_text="The rows as received; cleared once applied.")
    status = models.CharField(max_length=10, choices=IngestChunkStatus.choices, default=IngestChunkStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Deliveries that started applying it.")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When its task was last sent.")
    applied_at = models.DateTimeField(null=True, blank=True)
    created = models.PositiveIntegerField(default=0)
    duplicate = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="Rows refused when applied.")
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="ingestchunk_unique_number")]
        indexes = [
            # The stalled-chunk sweep reads pending chunks only.
            models.Index(fields=["enqueued_at"], name="ingestchunk_pending", condition=Q(status="pending")),
        ]

    def __str__(self) -> str:
        return f"chunk {self.number} of ingest job {self.job_id} ({self.status})"


class SavedSearch(models.Model):
    """A lead's named item-search filter, kept as the search page's query string (no cursor)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_searches")
    name = models.CharField(max_length=100)
    query = models.CharField(max_length=2000, help_text="The search page's query string, e.g. 'status=gold'.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="savedsearch_unique_name")]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.name}"


class AssignmentReason(models.TextChoices):
    SENT_BACK = "sent_back", "Sent back by a lead"
    ASSIGNED = "assigned", "Assigned by a lead"


class TaskAssignment(models.Model):
    """A task reserved for one named reviewer: a lead sent their answer back, or assigned it to them.

    While a task has an open assignment (`ReviewTask.assigned`), only the reviewers of its open
    assignments can claim it, and they are served it before unassigned work. The note is shown on
    the task. An assignment closes when its reviewer answers (`fulfilled_at`) or a lead cancels it.
    """

    task = models.ForeignKey(ReviewTask, on_delete=models.PROTECT, related_name="assignments")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=12, choices=AssignmentReason.choices)
    note = models.TextField(blank=True, help_text="The lead's note, shown to the reviewer on the task.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now())
    fulfilled_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["task", "reviewer"],
                condition=Q(fulfilled_at__isnull=True, cancelled_at__isnull=True),
                name="assignment_one_open_per_reviewer",
            )
        ]
        indexes = [
            models.Index(
                fields=["reviewer", "task"],
                name="assignment_open_by_reviewer",
                condition=Q(fulfilled_at__isnull=True, cancelled_at__isnull=True),
            )
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} reserved for {self.reviewer_id} ({self.reason})"


class StandingStatus(models.TextChoices):
    ACTIVE = "active"
    PAUSED = "paused"


class QueueStanding(models.Model):
    """A reviewer's access to live work in one queue, beyond membership.

    No row means active, unless the queue requires onboarding (`Queue.onboarding_size > 0`), in
    which case a reviewer works live only once `qualified_at` is set. A paused reviewer works
    nothing live until a lead resumes them or, when the pause was automatic, they re-qualify.
    """

    queue = models.ForeignKey(Queue, on_delete=models.CASCADE, related_name="standings")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queue_standings")
    status = models.CharField(max_length=8, choices=StandingStatus.choices, default=StandingStatus.ACTIVE)
    reason = models.TextField(blank=True, help_text="Why paused, in words shown to the reviewer and to leads.")
    automatic = models.BooleanField(default=False, help_text="Paused by the honeypot rule, not by a lead.")
    qualified_at = models.DateTimeField(null=True, blank=True, help_text="Last passed onboarding set.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    changed_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["queue", "reviewer"], name="standing_unique")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} in {self.queue_id}: {self.status}"


class BulkAction(models.Model):
    """One lead's bulk action over a search result; `key` makes a retried request a no-op.

    Each item it touched has its own audit event (action `bulk.<action>`), naming this row.
    """

    key = models.UUIDField(unique=True, help_text="Client-generated; the same key applies once.")
    action = models.CharField(max_length=32)
    params = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    query = models.CharField(max_length=2000, blank=True, help_text="The search it was taken over.")
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_label = models.CharField(max_length=200)
    matched = models.PositiveIntegerField(default=0, help_text="Tasks the search selected.")
    changed = models.PositiveIntegerField(default=0, help_text="Tasks this action changed.")
    skipped = models.JSONField(default=list, blank=True, help_text="[{'task': id, 'why': ...}] left as they were.")
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"bulk {self.action} by {self.actor_label}: {self.changed}/{self.matched}"


class ItemComment(models.Model):
    """A comment on an item's page, between reviewers and leads. Untrusted text; never edited."""

    item = models.ForeignKey(ContentItem, on_delete=models.PROTECT, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    mentions = models.JSONField(default=list, blank=True, help_text="User ids mentioned with @username.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        indexes = [models.Index(fields=["item", "created_at"], name="comment_item_time")]

    def __str__(self) -> str:
        return f"comment {self.pk} on item {self.item_id}"


class Notification(models.Model):
    """An in-app message for one person (a mention, an overturned answer, a pause, a sent-back task)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32)
    text = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True, help_text="A path inside the app.")
    created_at = models.DateTimeField(db_default=Now())
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="notification_unread", condition=Q(read_at=None))]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"
