"""The active-learning registry: training rounds, model versions, pool scores, selections, thresholds.

A *round* is one `TrainingRun`: train a head on the current gold labels of a policy, register the
artifact as a `ModelVersion`, evaluate it on held-out gold, decide champion/challenger
(`PromotionDecision`), score the unlabelled pool (`ScoringRun` → `ScoreChunk` → `PoolScore`), select
a batch for reviewers (`SelectionRound`) and propose routing thresholds (`ThresholdProposal`).
State changes happen in `activelearning.services`, never by saving these models from views.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now


class Encoder(models.TextChoices):
    HASHED = "hashed", "Hashed n-grams (trained end to end, fast)"
    MINILM = "minilm", "MiniLM sentence embeddings (frozen, cached)"
    UPSTREAM = "upstream", "Upstream embeddings sent at ingest (non-text items)"


class ItemEmbedding(models.Model):
    """A frozen encoder's vector for one item, computed once (float32 bytes, little-endian).

    `text_sha256` is the hash of the text that was encoded: a duplicate text on another item reuses
    the vector instead of running the encoder again.
    """

    item = models.ForeignKey("reviewapp.ContentItem", on_delete=models.CASCADE, related_name="+")
    encoder_id = models.CharField(max_length=200)
    text_sha256 = models.CharField(max_length=64)
    vector = models.BinaryField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "encoder_id"], name="itemembedding_unique")]
        indexes = [models.Index(fields=["encoder_id", "text_sha256"], name="itemembedding_text")]

    def __str__(self) -> str:
        return f"{self.encoder_id} of item {self.item_id}"


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class RunTrigger(models.TextChoices):
    MANUAL = "manual", "Started by a lead"
    API = "api", "Started over REST"
    NEW_GOLD = "new_gold", "New gold labels"
    SCHEDULE = "schedule", "Schedule"
    DRIFT = "drift", "Drift alert, started by a lead"


class RunStage(models.TextChoices):
    QUEUED = "queued"
    LOADING = "loading", "Loading gold labels"
    EMBEDDING = "embedding", "Computing features"
    TRAINING = "training"
    REGISTERING = "registering", "Writing the artifact"
    EVALUATING = "evaluating", "Evaluating on held-out gold"
    PROMOTING = "promoting", "Champion / challenger"
    SCORING = "scoring", "Scoring the unlabelled pool"
    SELECTING = "selecting", "Selecting items for review"
    THRESHOLDS = "thresholds", "Proposing thresholds"
    DONE = "done"


class TrainingRun(models.Model):
    """One active-learning round of a policy, from training to selection. At most one active per policy.

    The training set is identified by `gold_watermark` (the current gold labels of the policy among
    rows with id ≤ watermark; gold ids only grow, so the set can be rebuilt) and by a sha256 over its
    (item id, gold label id) pairs.
    """

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="training_runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    stage = models.CharField(max_length=12, choices=RunStage.choices, default=RunStage.QUEUED)
    progress = models.FloatField(default=0.0, help_text="0 to 1 over the whole round.")
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices, default=RunTrigger.MANUAL)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by_label = models.CharField(max_length=200, default="system")
    params = models.JSONField(default=dict, help_text="encoder, strategy, budget, queue_id, pipeline, head.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Deliveries of the training task.")
    gold_watermark = models.BigIntegerField(null=True, blank=True)
    training_set_sha256 = models.CharField(max_length=64, blank=True)
    snapshot_id = models.CharField(max_length=100, blank=True, help_text="Dataset snapshot, when one was used.")
    counts = models.JSONField(default=dict, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage.")
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["policy"],
                condition=Q(status__in=["queued", "running"]),
                name="trainingrun_one_active_per_policy",
            ),
            models.CheckConstraint(condition=Q(progress__gte=0, progress__lte=1), name="trainingrun_progress_unit"),
        ]
        indexes = [models.Index(fields=["policy", "-created_at"], name="trainingrun_policy_recent")]

    def __str__(self) -> str:
        return f"round {self.pk} of {self.policy_id} ({self.status}/{self.stage})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate"
    CHAMPION = "champion"
    RETIRED = "retired"


class ModelVersion(models.Model):
    """A trained head whose artifact file exists and matches `artifact_sha256`. Registered once per run.

    Deployed upstream, the model sends decisions as `model_name`@`version_label`; threshold
    proposals target the routing rule of that model name.
    """

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="model_versions")
    training_run = models.OneToOneField(TrainingRun, on_delete=models.PROTECT, related_name="model_version")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    artifact_path = models.CharField(max_length=500, help_text="Relative to REVIEWAPP_MODEL_DIR.")
    artifact_sha256 = models.CharField(max_length=64)
    artifact_bytes = models.BigIntegerField()
    encoder = models.CharField(max_length=10, choices=Encoder.choices)
    encoder_id = models.CharField(max_length=200)
    encoder_config = models.JSONField(default=dict)
    hyperparameters = models.JSONField(default=dict)
    task = models.CharField(max_length=12, help_text="binary, multiclass or multilabel")
    head_labels = models.JSONField(help_text="One sigmoid per entry.")
    classes = models.JSONField(help_text="Class names of the evaluation, in order.")
    positive_label = models.CharField(max_length=100, help_text="The harm: its probability is the routing score.")
    gold_watermark = models.BigIntegerField()
    training_set_sha256 = models.CharField(max_length=64)
    snapshot_id = models.CharField(max_length=100, blank=True)
    # The split definition the model was trained with (`services/splits.py`): held-out figures mean
    # something only under it, and a champion with another one is compared on items it never saw.
    split_rule = models.CharField(max_length=40, help_text="content-group-sha256, or item-id-sha256 (legacy).")
    split_salt = models.CharField(max_length=200)
    split_content_key_version = models.CharField(max_length=100, blank=True, help_text="Empty for the item-id rule.")
    split_dev_fraction = models.FloatField()
    split_test_fraction = models.FloatField()
    n_train = models.PositiveIntegerField()
    n_dev = models.PositiveIntegerField()
    training_history = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict, blank=True, help_text="Evaluation on held-out gold.")
    evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    promoted_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["policy", "number"], name="modelversion_unique_number"),
            models.UniqueConstraint(
                fields=["policy"], condition=Q(status="champion"), name="modelversion_one_champion_per_policy"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name}@{self.version_label} ({self.status})"

    @property
    def model_name(self) -> str:
        return f"al-{self.policy.key}"

    @property
    def version_label(self) -> str:
        return f"v{self.number}"


class PromotionOutcome(models.TextChoices):
    PROMOTED = "promoted"
    REJECTED = "rejected"


class PromotionDecision(models.Model):
    """Why a challenger did or did not replace the champion. One per challenger."""

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="+")
    challenger = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, related_name="promotion")
    champion = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="defences")
    outcome = models.CharField(max_length=10, choices=PromotionOutcome.choices)
    reasons = models.JSONField(default=list, help_text="Plain sentences, most important first.")
    comparison = models.JSONField(default=dict, help_text="Paired bootstrap, per-slice deltas, test set size.")
    actor_label = models.CharField(max_length=200, default="system")
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.challenger_id} {self.outcome}"


class ScoringStatus(models.TextChoices):
    RUNNING = "running"
    DONE = "done"


class ScoringRun(models.Model):
    """Scoring of the pool by one model version, fanned out as chunks over item id ranges."""

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scoring_runs")
    training_run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.CASCADE, related_name="scoring_runs"
    )
    first_id = models.BigIntegerField()
    chunk_size = models.PositiveIntegerField()
    n_chunks = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=ScoringStatus.choices, default=ScoringStatus.RUNNING)
    items_scored = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "training_run"],
                condition=Q(training_run__isnull=False),
                name="scoringrun_once_per_round",
            )
        ]

    def __str__(self) -> str:
        return f"scoring {self.pk} by {self.model_version_id} ({self.status})"

    def chunk_bounds(self, index: int) -> tuple[int, int]:
        """Item ids [low, high) of chunk `index`."""
        low = self.first_id + index * self.chunk_size
        return low, low + self.chunk_size


class ScoreChunk(models.Model):
    """A finished chunk: its scores were written in the same transaction, so it is never redone."""

    scoring_run = models.ForeignKey(ScoringRun, on_delete=models.CASCADE, related_name="chunks")
    first_id = models.BigIntegerField()
    n_scored = models.PositiveIntegerField()
    seconds = models.FloatField()
    max_rss_kb = models.BigIntegerField(help_text="Peak resident memory of the worker process after the chunk.")
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scoring_run", "first_id"], name="scorechunk_once")]

    def __str__(self) -> str:
        return f"chunk {self.first_id} of scoring {self.scoring_run_id}"


class PoolScore(models.Model):
    """One unlabelled item scored by one model version."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey("reviewapp.ContentItem", on_delete=models.CASCADE, related_name="+")
    probs = ArrayField(models.FloatField(), help_text="Calibrated probability per head label.")
    score = models.FloatField(help_text="Probability of the positive (harmful) label.")
    uncertainty = models.FloatField(help_text="Summed binary entropy over head labels, nats.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "item"], name="poolscore_unique")]
        indexes = [
            models.Index("model_version", models.F("uncertainty").desc(), name="poolscore_uncertain_first"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.score:.3f} by {self.model_version_id}"


class SelectionRound(models.Model):
    """Items a strategy picked from the scored pool, sent to reviewers as active-learning tasks."""

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="selections")
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.PROTECT, related_name="selection"
    )
    queue = models.ForeignKey("reviewapp.Queue", on_delete=models.PROTECT, related_name="+")
    strategy = models.CharField(max_length=50)
    budget = models.PositiveIntegerField()
    candidates = models.PositiveIntegerField(help_text="Scored, unlabelled, unqueued items the strategy saw.")
    chosen = models.JSONField(default=list, help_text="[{rank, item_id, task_id, score, uncertainty}]")
    tasks_created = models.PositiveIntegerField(default=0)
    actor_label = models.CharField(max_length=200, default="system")
    created_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"selection {self.pk}: {self.tasks_created} via {self.strategy}"


class ProposalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"


class ThresholdProposal(models.Model):
    """Routing thresholds for a model, from its held-out gold, waiting for a lead's decision."""

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="threshold_proposals")
    model_name = models.CharField(max_length=100, help_text="The routing rule's model name it would change.")
    target_precision = models.FloatField(help_text="Wanted precision of automatic enforcement.")
    target_recall = models.FloatField(help_text="Share of violations that must still reach people or enforcement.")
    auto_action = models.FloatField(null=True, blank=True)
    auto_clear = models.FloatField(null=True, blank=True)
    current_auto_action = models.FloatField(null=True, blank=True)
    current_auto_clear = models.FloatField(null=True, blank=True)
    estimates = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=ProposalStatus.choices, default=ProposalStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version"], condition=Q(status="pending"), name="thresholdproposal_one_pending"
            ),
            models.CheckConstraint(
                condition=Q(auto_clear__isnull=True)
                | Q(auto_action__isnull=True)
                | Q(auto_clear__lt=models.F("auto_action")),
                name="thresholdproposal_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"thresholds for {self.model_name}: clear ≤ {self.auto_clear}, action ≥ {self.auto_action}"


class LabelErrorTrigger(models.TextChoices):
    MANUAL = "manual", "Started by a person (command or API)"
    ROUND = "round", "After a round"
    SCHEDULE = "schedule", "Schedule"


class LabelErrorRun(models.Model):
    """One out-of-fold label-error check of a policy's gold: k heads, their probabilities, the suspects.

    Every current gold label (as of `gold_watermark`, hashed in `training_set_sha256`) is scored by
    the head of its fold, trained on the other folds only (`activelearning.out_of_fold`); confident
    learning then ranks the labels those probabilities contradict. The fold assignment is pinned
    by `fold_assignment_sha256`; `folds` holds, per fold, the hash of the items its head was fitted
    on, so anyone can check that no item was scored by a head that saw it.
    """

    policy = models.ForeignKey("labeling.Policy", on_delete=models.PROTECT, related_name="label_error_runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.QUEUED)
    trigger = models.CharField(max_length=10, choices=LabelErrorTrigger.choices, default=LabelErrorTrigger.MANUAL)
    # The round this check followed (at most one check per round: a redelivered end of round finds it).
    training_run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.PROTECT, related_name="label_error_run"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_by_label = models.CharField(max_length=200, default="system")
    params = models.JSONField(default=dict, help_text="encoder, k, seed, head, num_buckets, top_k, queue_id.")
    attempts = models.PositiveSmallIntegerField(default=0)
    encoder = models.CharField(max_length=10, choices=Encoder.choices)
    encoder_id = models.CharField(max_length=200, blank=True)
    encoder_config = models.JSONField(default=dict, blank=True)
    hyperparameters = models.JSONField(default=dict, blank=True, help_text="The head settings of every fold.")
    k = models.PositiveSmallIntegerField()
    seed = models.IntegerField()
    gold_watermark = models.BigIntegerField(null=True, blank=True)
    training_set_sha256 = models.CharField(max_length=64, blank=True)
    fold_assignment_sha256 = models.CharField(max_length=64, blank=True)
    folds = models.JSONField(default=list, blank=True, help_text="Per fold: sizes, fit-set sha256, epochs.")
    counts = models.JSONField(default=dict, blank=True)
    candidates_found = models.PositiveIntegerField(null=True, blank=True)
    candidates = models.JSONField(default=list, blank=True, help_text="The top_k suspects, most suspicious first.")
    task_ids = models.JSONField(default=list, blank=True, help_text="label_error tasks this run opened.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per stage.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["policy", "-created_at"], name="labelerrorrun_policy_recent")]

    def __str__(self) -> str:
        return f"label-error run {self.pk} of {self.policy_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


class OutOfFoldScore(models.Model):
    """The probabilities one gold label got from the head of its fold in a `LabelErrorRun`."""

    run = models.ForeignKey(LabelErrorRun, on_delete=models.CASCADE, related_name="scores")
    item = models.ForeignKey("reviewapp.ContentItem", on_delete=models.CASCADE, related_name="+")
    gold_label = models.ForeignKey("labeling.GoldLabel", on_delete=models.PROTECT, related_name="+")
    fold = models.PositiveSmallIntegerField()
    probabilities = models.JSONField(help_text="label → probability, over the policy's schema.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "item"], name="outoffoldscore_unique_item")]

    def __str__(self) -> str:
        return f"item {self.item_id} in fold {self.fold} of run {self.run_id}"


class DeploymentMode(models.TextChoices):
    LIVE = "live", "Live: its decisions route items"
    SHADOW = "shadow", "Shadow: its decisions are recorded and route nothing"


class ModelDeployment(models.Model):
    """Which versions of a policy's model score incoming content in the app: online, not offline.

    Promotion (`ModelStatus.CHAMPION`) is the offline verdict on held-out gold; deployment is what
    runs on traffic. A newly promoted champion enters *shadow* for the period in `shadow_until`
    (also the first model of a policy: nothing routes on a model before a lead switched it live);
    a lead switches it live, or rolls back to `previous_live`. New content items (id above the
    `*_from_item` watermark taken at the switch) get a `ModelDecision` from each deployed version,
    as `al-<policy>@v<N>`; the live one is routed like any upstream model's, the shadow one is
    stored with `RoutingOutcome.SHADOW`. `*_swept_to` is how far the periodic sweep has looked
    for items the after-commit scoring missed. State changes: `services/deployment.py` only.
    """

    policy = models.OneToOneField("labeling.Policy", on_delete=models.PROTECT, related_name="model_deployment")
    live = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    live_since = models.DateTimeField(null=True, blank=True)
    live_from_item = models.BigIntegerField(default=0, help_text="Items with a larger id are scored live.")
    live_swept_to = models.BigIntegerField(default=0)
    previous_live = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="What rollback restores.",
    )
    shadow = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    shadow_since = models.DateTimeField(null=True, blank=True)
    shadow_until = models.DateTimeField(null=True, blank=True, help_text="End of the shadow period a lead chose.")
    shadow_from_item = models.BigIntegerField(default=0, help_text="Items with a larger id are scored in shadow.")
    shadow_swept_to = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(live__isnull=True) | Q(shadow__isnull=True) | ~Q(live=models.F("shadow")),
                name="modeldeployment_live_is_not_shadow",
            )
        ]

    def __str__(self) -> str:
        return f"deployment of {self.policy_id}: live {self.live_id}, shadow {self.shadow_id}"
