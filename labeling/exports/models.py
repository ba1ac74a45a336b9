"""Gold datasets and their immutable versions, export jobs and webhooks.

A `Dataset` names a saved filter over gold labels and fixes how items are split (salt, shares,
group key). Each `DatasetSnapshot` is one immutable version: its member gold labels are frozen
in `DatasetSnapshotRow` (with their split), and it stores the row count and the sha256 of its
canonical JSONL export. Snapshots and their rows refuse UPDATE and DELETE in the database; gold
labels are immutable too, so a version exports the same bytes forever.

State changes happen in `snapshots.py`, `jobs.py` and `webhooks.py`, never by saving these
models from views.
"""

from __future__ import annotations

import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

GROUP_BY_TEXT = "text"
GROUP_BY_CONTENT = "content"
GROUP_BY_META_PREFIX = "meta:"
# New datasets group by content (exact and near-duplicate texts, `reviewapp.content_keys`), so no
# held-out item shares its text or nearly its text with training data. Datasets made before keep
# the rule they were created with.
DEFAULT_GROUP_BY = GROUP_BY_CONTENT
_META_FIELD = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def check_group_by(value: str) -> None:
    """'' (each item alone), 'text' (same normalised text), 'content' (exact and near-duplicate
    texts, see `reviewapp.content_keys`), or 'meta:<field>' (same metadata value)."""
    if value in ("", GROUP_BY_TEXT, GROUP_BY_CONTENT):
        return
    if value.startswith(GROUP_BY_META_PREFIX) and _META_FIELD.match(value[len(GROUP_BY_META_PREFIX) :]):
        return
    raise ValidationError(
        f"group key {value!r} must be empty, 'text', 'content', or 'meta:<field>' with a field of letters, "
        "digits and '_'"
    )


def new_salt() -> str:
    return secrets.token_hex(16)


class Split(models.TextChoices):
    TRAIN = "train"
    DEV = "dev"
    TEST = "test"


class Dataset(models.Model):
    """A named, versioned gold dataset, e.g. 'hate-speech-en'.

    `split_salt`, the split shares and `group_by` decide every item's split and never change
    (the admin shows them read-only and no service edits them), so adding items in a later
    version never moves an existing item to another split.
    """

    slug = models.SlugField(max_length=64, unique=True, help_text="Stable name used in URLs and file names.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    filters = models.JSONField(default=dict, help_text="Saved filter that new versions use (see SnapshotFilter).")
    group_by = models.CharField(
        max_length=80,
        blank=True,
        default=DEFAULT_GROUP_BY,
        validators=[check_group_by],
        help_text="Keep groups in one split: 'content' exact and near duplicates, '' none, 'text' exact "
        "duplicates, 'meta:<field>' e.g. meta:conversation_id.",
    )
    train_percent = models.PositiveSmallIntegerField(default=80)
    dev_percent = models.PositiveSmallIntegerField(default=10)
    split_salt = models.CharField(max_length=32, default=new_salt, editable=False)
    redact_pii_default = models.BooleanField(
        default=False, help_text="Exports replace emails, phone numbers, @handles and URLs unless asked not to."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by_label = models.CharField(max_length=200, help_text="username or 'token:<name>'")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(train_percent__lte=100, dev_percent__lte=100)
                & Q(train_percent__lte=100 - models.F("dev_percent")),
                name="dataset_split_percents_at_most_100",
            )
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def test_percent(self) -> int:
        return 100 - self.train_percent - self.dev_percent


class DatasetSnapshot(models.Model):
    """One immutable version of a dataset. Inserted complete, in one transaction, never changed."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    filters = models.JSONField(help_text="The filter this version was built with.")
    row_count = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64, help_text="sha256 of the canonical JSONL export (all splits).")
    stats = models.JSONField(default=dict, help_text="Split sizes, class balance, label sources, diff to previous.")
    split_definition = models.JSONField(
        default=dict,
        help_text="How rows were split: salt, group rule, content key version, shares, hash (see splits.py).",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["dataset", "-version"]
        constraints = [models.UniqueConstraint(fields=["dataset", "version"], name="snapshot_unique_version")]

    def __str__(self) -> str:
        return f"{self.dataset_id} v{self.version}"


class DatasetSnapshotRow(models.Model):
    """One frozen member of a snapshot: a gold label, its place in canonical order, its split.

    `position` numbers rows by (item id, policy key), so exports read them in order from the
    primary key without sorting.
    """

    pk = models.CompositePrimaryKey("snapshot_id", "position")
    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.PROTECT, related_name="rows", db_index=False)
    position = models.PositiveIntegerField()
    gold_label = models.ForeignKey("labeling.GoldLabel", on_delete=models.PROTECT, related_name="+", db_index=False)
    split = models.CharField(max_length=5, choices=Split.choices)

    class Meta:
        indexes = [models.Index(fields=["snapshot", "split", "position"], name="snapshotrow_split")]

    def __str__(self) -> str:
        return f"{self.snapshot_id}#{self.position}"


class ContentGroupKey(models.Model):
    """The content group of a gold-labelled item, fixed the first time a content-grouped snapshot took it.

    Rows are numbered (`id`) in the order items were keyed, under a lock, so the order only ever
    grows at the end; `reviewapp.content_keys.content_groups` over the texts in that order gives
    every earlier row its stored key again, and new items join the group of the earliest item they
    duplicate. Keys are shared by every dataset (a key is only hashed with each dataset's salt).
    """

    item = models.ForeignKey("reviewapp.ContentItem", on_delete=models.PROTECT, related_name="+")
    key_version = models.CharField(max_length=100, help_text="reviewapp.content_keys.CONTENT_KEY_VERSION")
    group_key = models.CharField(max_length=300)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["key_version", "item"], name="contentgroupkey_one_per_item"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.group_key}"


class JobStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    EXPIRED = "expired", "Expired (file deleted)"


class SnapshotBuild(models.Model):
    """A request to build a version in the background (large datasets); the snapshot when done."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="builds")
    filters = models.JSONField()
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    rows_expected = models.PositiveIntegerField(help_text="Matching gold labels when requested.")
    snapshot = models.OneToOneField(
        DatasetSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="build"
    )
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"build {self.pk} of {self.dataset_id} ({self.status})"


class ExportFormat(models.TextChoices):
    JSONL = "jsonl", "JSON Lines"
    CSV = "csv", "CSV"
    # Formula-looking cells prefixed with ' (see formats.py); `csv` keeps the exact values.
    CSV_EXCEL = "csv-excel", "CSV for spreadsheets (formulas neutralised)"
    PARQUET = "parquet", "Parquet"
    LABEL_STUDIO = "label-studio", "Label Studio JSON"


class ExportJob(models.Model):
    """A background export of one snapshot variant into a file under settings.EXPORT_DIR.

    Snapshots never change, so the file is a cache: one job per (snapshot, format, split, redaction),
    reused by every later request for the same bytes.
    """

    snapshot = models.ForeignKey(DatasetSnapshot, on_delete=models.PROTECT, related_name="export_jobs")
    format = models.CharField(max_length=12, choices=ExportFormat.choices)
    split = models.CharField(max_length=5, choices=Split.choices, blank=True, help_text="Empty: every split.")
    redact_pii = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    rows_total = models.PositiveIntegerField()
    rows_done = models.PositiveIntegerField(default=0)
    bytes_written = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_by_label = models.CharField(max_length=200)
    created_at = models.DateTimeField(db_default=Now())
    queued_at = models.DateTimeField(db_default=Now(), help_text="Last (re)queued.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["snapshot", "format", "split", "redact_pii"], name="exportjob_one_per_variant"
            )
        ]

    def __str__(self) -> str:
        return f"export {self.pk}: {self.snapshot_id} {self.format} {self.split or 'all'} ({self.status})"


class WebhookEvent(models.TextChoices):
    SNAPSHOT_READY = "snapshot.ready", "Dataset snapshot ready"
    GOLD_CREATED = "gold_label.created", "Gold label created"
    DECISION_ENFORCED = "decision.enforced", "Model decision enforced automatically"
    APPEAL_DECIDED = "appeal.decided", "Appeal decided"


def _default_events() -> list[str]:
    return [WebhookEvent.SNAPSHOT_READY.value]


class WebhookEndpoint(models.Model):
    """A receiver of signed event notifications. The secret is kept to sign every delivery."""

    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=128, default=new_salt, help_text="HMAC-SHA256 key for X-Reviewapp-Signature.")
    events = models.JSONField(default=_default_events, help_text="Event names, e.g. ['snapshot.ready'].")
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"<WebhookEndpoint {self.pk} {self.url}>"  # never the secret


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed", "Failed (gave up)"


class WebhookDelivery(models.Model):
    """One event sent (or being sent) to one endpoint, with the outcome of the latest attempt."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event = models.CharField(max_length=40, choices=WebhookEvent.choices)
    event_id = models.UUIDField(help_text="Sent as X-Reviewapp-Delivery; receivers deduplicate by it.")
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "webhook deliveries"
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="delivery_once_per_endpoint")]
        indexes = [
            models.Index(fields=["next_attempt_at"], name="delivery_pending", condition=Q(status="pending")),
            models.Index(fields=["endpoint", "created_at"], name="delivery_endpoint_time"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint_id} ({self.status}, {self.attempts} attempts)"
