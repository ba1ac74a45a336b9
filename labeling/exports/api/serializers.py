"""Input and output shapes of the dataset API (documented in the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import GoldSource

from ..formats import EXTENSIONS
from ..models import (
    DEFAULT_GROUP_BY,
    Dataset,
    DatasetSnapshot,
    ExportFormat,
    ExportJob,
    JobStatus,
    SnapshotBuild,
    Split,
)
from ..snapshots import CHANGES
from ..splits import split_definition


class SplitDefinitionSerializer(serializers.Serializer):
    """What decided each row's split; two versions are comparable only when these agree."""

    bucket = serializers.CharField(help_text="How a group key becomes a split.")
    salt = serializers.CharField()
    group_by = serializers.CharField(help_text="'content', 'text', 'meta:<field>' or '' (each item alone).")
    content_key_version = serializers.CharField(
        allow_null=True, help_text="reviewapp.content_keys version when grouped by content."
    )
    near_duplicate_jaccard = serializers.FloatField(
        allow_null=True, help_text="Character 5-gram Jaccard at which texts are near duplicates."
    )
    train_percent = serializers.IntegerField()
    dev_percent = serializers.IntegerField()
    test_percent = serializers.IntegerField()
    held_out_leaks = serializers.CharField(
        help_text="'excluded': held-out items with a near duplicate in another split are left out of the version."
    )


class SnapshotFilterSerializer(serializers.Serializer):
    policies = serializers.ListField(
        child=serializers.SlugField(max_length=64), required=False, help_text="Policy keys; empty: every policy."
    )
    languages = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, help_text="Item metadata 'language' values."
    )
    routes = serializers.ListField(
        child=serializers.CharField(max_length=40),
        required=False,
        help_text="Why items reached people (task reason), e.g. low_confidence, audit_sample.",
    )
    label_sources = serializers.ListField(
        child=serializers.ChoiceField(choices=GoldSource.choices), required=False, help_text="Gold label sources."
    )
    date_from = serializers.DateField(required=False, allow_null=True, help_text="Gold labelled on or after (UTC).")
    date_to = serializers.DateField(required=False, allow_null=True, help_text="Gold labelled on or before (UTC).")


class DatasetCreateSerializer(serializers.Serializer):
    slug = serializers.SlugField(max_length=64)
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    filters = SnapshotFilterSerializer(required=False, help_text="Saved filter for new versions.")
    group_by = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=80,
        default=DEFAULT_GROUP_BY,
        help_text="Keep groups in one split: 'content' (default: exact and near-duplicate texts), '' none, "
        "'text' (exact duplicate texts only), 'meta:<field>' (e.g. meta:conversation_id). Fixed for good.",
    )
    train_percent = serializers.IntegerField(required=False, min_value=0, max_value=100, default=80)
    dev_percent = serializers.IntegerField(required=False, min_value=0, max_value=100, default=10)
    redact_pii_default = serializers.BooleanField(required=False, default=False)
    build = serializers.BooleanField(
        required=False,
        default=True,
        help_text="Build the first version from the saved filter now, as the lead page's Create does "
        "(400, and no dataset, when no gold label matches). false: create the dataset alone and POST to "
        "its versions later.",
    )


class DatasetSerializer(serializers.ModelSerializer):
    filters = SnapshotFilterSerializer(read_only=True)
    test_percent = serializers.IntegerField(read_only=True)
    latest_version = serializers.IntegerField(read_only=True, allow_null=True)
    versions_url = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by_label", read_only=True)
    split_definition = serializers.SerializerMethodField(help_text="What every version of it is split by.")

    class Meta:
        model = Dataset
        fields = [
            "slug",
            "name",
            "description",
            "filters",
            "group_by",
            "split_salt",
            "train_percent",
            "dev_percent",
            "test_percent",
            "split_definition",
            "redact_pii_default",
            "latest_version",
            "versions_url",
            "created_by",
            "created_at",
        ]

    @extend_schema_field(SplitDefinitionSerializer)
    def get_split_definition(self, obj: Dataset) -> dict[str, Any]:
        return split_definition(
            salt=obj.split_salt, group_by=obj.group_by, train_percent=obj.train_percent, dev_percent=obj.dev_percent
        )

    def get_versions_url(self, obj: Dataset) -> str:
        return reverse("api-dataset-versions", kwargs={"slug": obj.slug})


class VersionCreateSerializer(serializers.Serializer):
    filters = SnapshotFilterSerializer(required=False, help_text="Omit to use the dataset's saved filter.")


class SnapshotSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug")
    filters = SnapshotFilterSerializer(read_only=True)
    created_by = serializers.CharField(source="created_by_label")
    split_definition = SplitDefinitionSerializer(read_only=True, help_text="What decided each row's split.")
    held_out_excluded = serializers.SerializerMethodField(
        help_text="Held-out items left out because a near duplicate is in another split: split → items "
        "(null when the version is not grouped by content)."
    )
    splits = serializers.SerializerMethodField()
    class_balance = serializers.SerializerMethodField(help_text="Per split: '<policy>:<label>' → label count.")
    label_sources = serializers.SerializerMethodField(help_text="Per split: gold label source → rows.")
    previous_version = serializers.SerializerMethodField()
    diff_previous = serializers.SerializerMethodField(help_text="Change counts against the previous version.")
    exports = serializers.SerializerMethodField(help_text="Export URL per format (add &split=train|dev|test).")
    url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetSnapshot
        fields = [
            "dataset",
            "version",
            "row_count",
            "content_hash",
            "filters",
            "split_definition",
            "splits",
            "held_out_excluded",
            "class_balance",
            "label_sources",
            "previous_version",
            "diff_previous",
            "exports",
            "url",
            "created_by",
            "created_at",
        ]

    def get_splits(self, obj: DatasetSnapshot) -> dict[str, int]:
        return obj.stats.get("splits", {})

    def get_held_out_excluded(self, obj: DatasetSnapshot) -> dict[str, int] | None:
        return obj.stats.get("held_out_excluded")

    def get_class_balance(self, obj: DatasetSnapshot) -> dict[str, dict[str, int]]:
        return obj.stats.get("class_balance", {})

    def get_label_sources(self, obj: DatasetSnapshot) -> dict[str, dict[str, int]]:
        return obj.stats.get("label_sources", {})

    def get_previous_version(self, obj: DatasetSnapshot) -> int | None:
        return obj.stats.get("previous_version")

    def get_diff_previous(self, obj: DatasetSnapshot) -> dict[str, int] | None:
        return obj.stats.get("diff_previous")

    def get_exports(self, obj: DatasetSnapshot) -> dict[str, str]:
        base = reverse("api-dataset-export", kwargs={"slug": obj.dataset.slug, "version": obj.version})
        return {fmt: f"{base}?format={fmt}" for fmt in EXTENSIONS}

    def get_url(self, obj: DatasetSnapshot) -> str:
        return reverse("api-dataset-version", kwargs={"slug": obj.dataset.slug, "version": obj.version})


class BuildSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug")
    version = serializers.SerializerMethodField()
    version_url = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = SnapshotBuild
        fields = ["id", "dataset", "status", "rows_expected", "version", "version_url", "error", "url"]
        fields += ["created_at", "started_at", "finished_at"]

    def get_version(self, obj: SnapshotBuild) -> int | None:
        return obj.snapshot.version if obj.snapshot else None

    def get_version_url(self, obj: SnapshotBuild) -> str | None:
        if obj.snapshot is None:
            return None
        return reverse("api-dataset-version", kwargs={"slug": obj.dataset.slug, "version": obj.snapshot.version})

    def get_url(self, obj: SnapshotBuild) -> str:
        return reverse("api-snapshot-build", kwargs={"slug": obj.dataset.slug, "build_id": obj.pk})


class ExportQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=ExportFormat.values, default=ExportFormat.JSONL)
    split = serializers.ChoiceField(choices=Split.values, required=False)
    redact_pii = serializers.BooleanField(required=False, allow_null=True, default=None)
    background = serializers.BooleanField(required=False, default=False)


class ExportJobSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="snapshot.dataset.slug")
    version = serializers.IntegerField(source="snapshot.version")
    progress = serializers.SerializerMethodField(help_text="rows_done / rows_total, 0–1.")
    download_url = serializers.SerializerMethodField(help_text="Set when status is 'done'.")
    url = serializers.SerializerMethodField()
    bytes = serializers.IntegerField(source="bytes_written")

    class Meta:
        model = ExportJob
        fields = ["id", "dataset", "version", "format", "split", "redact_pii", "status", "rows_total", "rows_done"]
        fields += ["progress", "bytes", "sha256", "download_url", "url", "error", "created_at", "finished_at"]

    def get_progress(self, obj: ExportJob) -> float:
        if obj.status == JobStatus.DONE:
            return 1.0
        return round(obj.rows_done / obj.rows_total, 4) if obj.rows_total else 0.0

    def get_download_url(self, obj: ExportJob) -> str | None:
        if obj.status != JobStatus.DONE:
            return None
        return reverse("api-export-download", kwargs={"job_id": obj.pk})

    def get_url(self, obj: ExportJob) -> str:
        return reverse("api-export-job", kwargs={"job_id": obj.pk})


class DiffQuerySerializer(serializers.Serializer):
    against = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="Older version; default the previous one."
    )
    change = serializers.ChoiceField(choices=CHANGES, required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000, default=100)
    after = serializers.RegexField(
        r"^\d{1,18}:[-a-zA-Z0-9_]{1,64}$", required=False, help_text="`next_after` of the previous page."
    )


class DiffRowSerializer(serializers.Serializer):
    item_id = serializers.IntegerField()
    source = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.source
    external_id = serializers.CharField()
    policy = serializers.CharField()
    change = serializers.ChoiceField(choices=CHANGES)
    old_labels = serializers.ListField(child=serializers.CharField(), allow_null=True)
    new_labels = serializers.ListField(child=serializers.CharField(), allow_null=True)
    old_gold_label_id = serializers.IntegerField(allow_null=True)
    new_gold_label_id = serializers.IntegerField(allow_null=True)


class DiffCountsSerializer(serializers.Serializer):
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    relabelled = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="New gold version with the same labels (provenance changed).")


class DiffSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    from_version = serializers.IntegerField()
    to_version = serializers.IntegerField()
    counts = DiffCountsSerializer()
    rows = DiffRowSerializer(many=True)
    next_after = serializers.CharField(allow_null=True, help_text="Pass as `after` for the next page; null at the end.")


class DatasetCreatedSerializer(DatasetSerializer):
    """A new dataset, with what its creation built: the first version (small), or the background
    build to poll (large); both null when it was created with `build: false`."""

    first_version = SnapshotSerializer(read_only=True, allow_null=True)
    first_build = BuildSerializer(read_only=True, allow_null=True)

    class Meta(DatasetSerializer.Meta):
        fields = [*DatasetSerializer.Meta.fields, "first_version", "first_build"]
