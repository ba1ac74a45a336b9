"""What reviewapp remembers about Label Studio: connections, projects, pushed tasks, pulled
annotations, the people behind Label Studio user ids, and a log of every sync.

State changes happen in `labeling.labelstudio.services` (connections, projects, push, pull), never
by saving these models from views.
"""

from __future__ import annotations

import os
import re
import secrets

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from .crypto import SecretUnreadable, decrypt, encrypt

# The only environment variables a connection may read its token from. Any other name could be
# a server secret (DJANGO_SECRET_KEY, DATABASE_URL, ...) that the client would send to base_url.
TOKEN_ENV_PREFIX = "LABEL_STUDIO_TOKEN_"  # noqa: S105 (a variable name prefix)
TOKEN_ENV_PATTERN = re.compile(r"LABEL_STUDIO_TOKEN_[A-Z0-9_]+")
validate_token_env_var = RegexValidator(
    rf"\A{TOKEN_ENV_PATTERN.pattern}\Z",
    f"A token environment variable must be named {TOKEN_ENV_PREFIX}<NAME> (capitals, digits, underscores).",
)


class TokenNotAllowed(SecretUnreadable):
    """The connection names an environment variable that may not hold a Label Studio token."""


class ConnectionStatus(models.TextChoices):
    UNKNOWN = "unknown", "Not checked yet"
    OK = "ok", "OK"
    UNAUTHORIZED = "unauthorized", "Token refused"
    UNREACHABLE = "unreachable", "Server unreachable"
    PROJECT_MISSING = "project_missing", "Project missing"
    CONFIG_MISMATCH = "config_mismatch", "Config mismatch"
    ERROR = "error", "Error"


class Connection(models.Model):
    """One team's Label Studio server, used for one policy.

    The API token is stored encrypted (`token_ciphertext`, see crypto.py); the pages only ever
    take a token, never a variable name. An operator may instead name an environment variable in
    `token_env_var`, but only one called LABEL_STUDIO_TOKEN_<NAME>: `api_token` refuses any other
    name (rows saved before the rule included), so no field can make the client send a server
    secret. The token never appears in logs, the audit trail or `repr`. Label Studio projects are
    created by reviewapp, one per policy version (`Project`).
    """

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(help_text="Label Studio's address as reviewapp reaches it, e.g. https://ls.example.com")
    token_ciphertext = models.TextField(blank=True, editable=False)
    token_env_var = models.CharField(
        max_length=100,
        blank=True,
        validators=[validate_token_env_var],
        help_text="Operators only: read the API token from this LABEL_STUDIO_TOKEN_<NAME> environment variable.",
    )
    webhook_secret_ciphertext = models.TextField(editable=False)
    callback_base_url = models.URLField(
        blank=True,
        help_text="reviewapp's address as Label Studio reaches it, for webhooks; empty: scheduled pulls only.",
    )
    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="+")
    queue = models.ForeignKey(
        "reviewapp.Queue",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The queue that 'Push queue' sends.",
    )
    is_active = models.BooleanField(default=True)
    status = models.CharField(max_length=20, choices=ConnectionStatus.choices, default=ConnectionStatus.UNKNOWN)
    status_detail = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    last_pull_at = models.DateTimeField(null=True, blank=True, help_text="Last successful pull.")
    last_webhook_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(token_ciphertext="") | ~Q(token_env_var=""), name="labelstudio_connection_has_token"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Connection {self.pk} {self.name!r} {self.base_url}>"

    @property
    def api_url(self) -> str:
        return self.base_url.rstrip("/")

    def api_token(self) -> str:
        """The plain token, from the environment variable when one is named.

        Raises TokenNotAllowed for a variable outside LABEL_STUDIO_TOKEN_*, SecretUnreadable for a
        token the configured keys cannot decrypt."""
        if self.token_env_var:
            if not TOKEN_ENV_PATTERN.fullmatch(self.token_env_var):
                raise TokenNotAllowed(
                    f"This connection reads its API token from the environment variable {self.token_env_var!r}, "
                    f"which is refused: only variables named {TOKEN_ENV_PREFIX}<NAME> may hold a Label Studio "
                    "token. Enter the token on the connection's admin page (it is stored encrypted)."
                )
            return os.environ.get(self.token_env_var, "")
        return decrypt(self.token_ciphertext)

    def set_api_token(self, token: str) -> None:
        """Store `token` encrypted; it replaces any environment variable named before (unsaved)."""
        self.token_ciphertext = encrypt(token) if token else ""
        if token:
            self.token_env_var = ""

    def webhook_secret(self) -> str:
        return decrypt(self.webhook_secret_ciphertext)

    def new_webhook_secret(self) -> None:
        """A fresh secret for Label Studio to send with webhooks (stored encrypted; unsaved)."""
        self.webhook_secret_ciphertext = encrypt(secrets.token_urlsafe(32))


class Project(models.Model):
    """A Label Studio project that reviewapp created for one version of the connection's policy.

    Its labeling config is generated from that version's label schema. A new policy version
    updates the project in place while nobody has annotated in it, and otherwise gets a new
    project (the old one stays, and is still pulled until its tasks are done).
    """

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="projects")
    ls_project_id = models.PositiveIntegerField()
    policy_version = models.ForeignKey("labeling.PolicyVersion", on_delete=models.PROTECT, related_name="+")
    label_config = models.TextField()
    is_current = models.BooleanField(default=True)
    ls_webhook_id = models.PositiveIntegerField(null=True, blank=True)
    pull_cursor = models.DateTimeField(
        null=True, blank=True, help_text="Label Studio's task updated_at up to which annotations were pulled."
    )
    missing_since = models.DateTimeField(null=True, blank=True, help_text="Label Studio answered 404 for it.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "ls_project_id"], name="labelstudio_project_unique"),
            models.UniqueConstraint(
                fields=["connection"], condition=Q(is_current=True), name="labelstudio_one_current_project"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connection} project {self.ls_project_id}"


class PushedTask(models.Model):
    """A review task sent to Label Studio. `ls_task_id` is null while the import is in flight:
    a push that died there is reconciled against Label Studio before anything is sent again."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="pushed_tasks")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="pushed_tasks")
    task = models.ForeignKey("reviewapp.ReviewTask", on_delete=models.PROTECT, related_name="+")
    ls_task_id = models.PositiveIntegerField(null=True, blank=True)
    is_live = models.BooleanField(default=True, help_text="False once its project was deleted in Label Studio.")
    pushed_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            # One live Label Studio copy of a review task per connection: pushing twice creates nothing.
            models.UniqueConstraint(
                fields=["connection", "task"], condition=Q(is_live=True), name="labelstudio_pushed_once"
            ),
            models.UniqueConstraint(fields=["project", "ls_task_id"], name="labelstudio_ls_task_unique"),
        ]

    def __str__(self) -> str:
        return f"task {self.task_id} → LS task {self.ls_task_id}"


class ExternalReviewer(models.Model):
    """A Label Studio user and the reviewapp user their annotations are recorded as.

    Keyed by server, not connection: the same person annotating in two projects of one server is
    one reviewer here, so "a reviewer never labels an item twice" holds across projects. Created
    on first sight with a login-less user; a lead may point it at an existing reviewer instead.
    """

    server_url = models.CharField(max_length=200)
    ls_user_id = models.PositiveIntegerField()
    email = models.CharField(max_length=254, blank=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["server_url", "ls_user_id"], name="labelstudio_user_unique")]

    def __str__(self) -> str:
        return f"{self.server_url} user {self.ls_user_id} → {self.reviewer_id}"


class ImportOutcome(models.TextChoices):
    IMPORTED = "imported", "Imported"
    WAITING = "waiting", "Waiting: another reviewer holds the task"
    REJECTED = "rejected", "Rejected"
    INVALID = "invalid", "Invalid labels"
    CANCELLED = "cancelled", "Skipped in Label Studio"


class PulledAnnotation(models.Model):
    """A Label Studio annotation seen by a pull, and what became of it.

    `payload` keeps the answer as read (labels, severity, rationale, lead time), so an answer
    that could not be recorded yet (`waiting`) is retried without asking Label Studio again and
    nothing is lost. `first_updated_at` is the version that was submitted; later edits in Label
    Studio move `ls_updated_at` and are recorded in the audit log, not as a second answer.
    """

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="pulled_annotations")
    pushed_task = models.ForeignKey(PushedTask, on_delete=models.PROTECT, related_name="pulled_annotations")
    ls_annotation_id = models.PositiveIntegerField()
    external_reviewer = models.ForeignKey(ExternalReviewer, on_delete=models.PROTECT, related_name="+")
    annotation = models.ForeignKey(
        "labeling.Annotation", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    outcome = models.CharField(max_length=12, choices=ImportOutcome.choices)
    detail = models.TextField(blank=True)
    payload = models.JSONField()
    first_updated_at = models.DateTimeField()
    ls_updated_at = models.DateTimeField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "ls_annotation_id"], name="labelstudio_annotation_once")
        ]
        indexes = [
            models.Index(fields=["project"], name="labelstudio_waiting", condition=Q(outcome="waiting")),
        ]

    def __str__(self) -> str:
        return f"LS annotation {self.ls_annotation_id}: {self.outcome}"


class SyncKind(models.TextChoices):
    TEST = "test", "Test connection"
    PROJECT = "project", "Project sync"
    PUSH = "push", "Push"
    PULL = "pull", "Pull"


class SyncRun(models.Model):
    """The sync log: one row per test, project sync, push or pull, with counts and the error."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="sync_runs")
    kind = models.CharField(max_length=10, choices=SyncKind.choices)
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(null=True, help_text="Empty while running.")
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    triggered_by = models.CharField(max_length=200, blank=True, help_text="user, 'schedule', 'webhook', ...")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["connection", "-started_at"], name="labelstudio_syncrun_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.started_at:%Y-%m-%d %H:%M:%S} {'ok' if self.ok else self.error[:40]}"
