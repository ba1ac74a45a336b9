"""Datasets and their versions: create a dataset, build a snapshot, compare two snapshots.

A snapshot is built in one transaction (`snapshot_create`): for a dataset split by content, the
new items get their stored content groups first and bridged held-out items are found
(`grouping.py`); then the member gold labels are frozen with one `INSERT … SELECT` (splits
assigned in SQL from the group keys), the split definition is recorded on the snapshot, the
statistics and the diff with the previous version are aggregated in SQL, the content hash is
computed by streaming the canonical JSONL export once, and only then is the snapshot row
inserted, complete (its id is taken from the sequence first; the rows' foreign key to it is
checked at commit). Snapshots and rows are append-only in the database, so a version is either
absent or whole and never changes.

Small snapshots are built in the request; larger ones (over settings.SNAPSHOT_SYNC_MAX_ROWS)
by the Celery task `exports.build_snapshot` (`snapshot_request` decides).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from labeling.models import GoldSource, Policy
from reviewapp.audit import Actor, audit_record

from . import webhooks
from .formats import jsonl
from .grouping import content_keys_assign, held_out_leaks
from .models import (
    DEFAULT_GROUP_BY,
    GROUP_BY_CONTENT,
    Dataset,
    DatasetSnapshot,
    JobStatus,
    SnapshotBuild,
    WebhookEvent,
    check_group_by,
)
from .rows import row_tuples
from .splits import bucket_sql, split_case_sql, split_definition

FILTER_KEYS = ("policies", "languages", "routes", "label_sources", "date_from", "date_to")


@dataclass(frozen=True)
class SnapshotFilter:
    """Which gold labels a version takes: the current label of each (item, policy) that matches.

    Empty lists mean "any". Dates are inclusive UTC days on the gold label's creation time.
    """

    policies: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()
    label_sources: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def from_json(cls, data: Any) -> SnapshotFilter:
        """Validate a filter (from a form, the API or a saved dataset); ValidationError on the first problem."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValidationError("filter must be an object")
        unknown = sorted(set(data) - set(FILTER_KEYS))
        if unknown:
            raise ValidationError(f"unknown filter keys: {', '.join(unknown)}; known: {', '.join(FILTER_KEYS)}")
        lists = {key: _string_list(data, key) for key in ("policies", "languages", "routes", "label_sources")}
        bad_sources = sorted(set(lists["label_sources"]) - set(GoldSource.values))
        if bad_sources:
            raise ValidationError(f"unknown label sources: {', '.join(bad_sources)}")
        missing = sorted(
            set(lists["policies"]) - set(Policy.objects.filter(key__in=lists["policies"]).values_list("key", flat=True))
        )
        if missing:
            raise ValidationError(f"unknown policies: {', '.join(missing)}")
        date_from, date_to = _date(data, "date_from"), _date(data, "date_to")
        if date_from and date_to and date_from > date_to:
            raise ValidationError("date_from is after date_to")
        return cls(**lists, date_from=date_from, date_to=date_to)

    def to_json(self) -> dict[str, Any]:
        return {
            "policies": list(self.policies),
            "languages": list(self.languages),
            "routes": list(self.routes),
            "label_sources": list(self.label_sources),
            "date_from": self.date_from.isoformat() if self.date_from else None,
            "date_to": self.date_to.isoformat() if self.date_to else None,
        }

    def where_sql(self) -> tuple[str, list[Any]]:
        """Conditions over the current gold label `g`, its policy `p` and its item `i`."""
        conditions: list[str] = ["TRUE"]
        params: list[Any] = []
        for values, column in (
            (self.policies, "p.key"),
            (self.languages, "i.metadata ->> 'language'"),
            (self.routes, "g.route"),
            (self.label_sources, "g.source"),
        ):
            if values:
                conditions.append(f"{column} = ANY(%s)")
                params.append(list(values))
        if self.date_from:
            conditions.append("g.created_at >= %s")
            params.append(_utc_midnight(self.date_from))
        if self.date_to and self.date_to < date.max:
            conditions.append("g.created_at < %s")
            params.append(_utc_midnight(self.date_to + timedelta(days=1)))
        return " AND ".join(conditions), params


def _string_list(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and 0 < len(v) <= 100 for v in value):
        raise ValidationError(f"{key} must be a list of non-empty strings")
    return tuple(sorted(set(value)))


def _date(data: dict[str, Any], key: str) -> date | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{key} must be a date (YYYY-MM-DD)") from None


def _utc_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# The current gold label of each (item, policy): the one no later version supersedes.
_MATCHING = """
    FROM labeling_goldlabel g
    JOIN labeling_policy p ON p.id = g.policy_id
    JOIN reviewapp_contentitem i ON i.id = g.item_id
    WHERE NOT EXISTS (SELECT 1 FROM labeling_goldlabel s WHERE s.supersedes_id = g.id) AND {where}
"""


def matching_count(filters: SnapshotFilter) -> int:
    where, params = filters.where_sql()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) " + _MATCHING.format(where=where), params)
        return cursor.fetchone()[0]


def dataset_create(
    *,
    slug: str,
    name: str,
    filters: SnapshotFilter,
    actor: Actor,
    description: str = "",
    group_by: str = DEFAULT_GROUP_BY,
    train_percent: int = 80,
    dev_percent: int = 10,
    redact_pii_default: bool = False,
) -> Dataset:
    """Create a dataset (no version yet). Its salt, shares and group key are fixed from now on.

    There is no service that changes them: another rule is another dataset (a new slug).
    """
    check_group_by(group_by)
    if not (0 <= train_percent <= 100 and 0 <= dev_percent <= 100 and train_percent + dev_percent <= 100):
        raise ValidationError("train and dev percentages must be 0–100 and add up to at most 100")
    with transaction.atomic():
        if Dataset.objects.filter(slug=slug).exists():
            raise ValidationError(f"a dataset named {slug!r} exists already")
        dataset = Dataset.objects.create(
            slug=slug,
            name=name,
            description=description,
            filters=filters.to_json(),
            group_by=group_by,
            train_percent=train_percent,
            dev_percent=dev_percent,
            redact_pii_default=redact_pii_default,
            created_by_id=actor.id,
            created_by_label=actor.label,
        )
        audit_record(
            actor=actor,
            action="dataset.created",
            object_type="dataset",
            object_id=dataset.pk,
            after={
                "slug": slug,
                "filters": dataset.filters,
                "group_by": group_by,
                "split": [train_percent, dev_percent],
            },
        )
    return dataset


def dataset_start(
    *, fields: dict[str, Any], filters: SnapshotFilter, actor: Actor, requested_by: User | None = None
) -> DatasetSnapshot | SnapshotBuild:
    """Create a dataset and request its first version, together (the lead page's "Create")."""
    with transaction.atomic():
        dataset = dataset_create(filters=filters, actor=actor, **fields)
        return snapshot_request(dataset=dataset, filters=filters, actor=actor, requested_by=requested_by)


def snapshot_request(
    *, dataset: Dataset, filters: SnapshotFilter, actor: Actor, requested_by: User | None = None
) -> DatasetSnapshot | SnapshotBuild:
    """A new version now (small) or a queued background build (large); ValidationError if nothing matches."""
    expected = matching_count(filters)
    if expected == 0:
        raise ValidationError("No gold labels match this filter.")
    if expected <= settings.SNAPSHOT_SYNC_MAX_ROWS:
        return snapshot_create(dataset_id=dataset.pk, filters=filters, actor=actor)
    from .tasks import build_snapshot

    with transaction.atomic():
        build = SnapshotBuild.objects.create(
            dataset=dataset,
            filters=filters.to_json(),
            rows_expected=expected,
            requested_by=requested_by,
            requested_by_label=actor.label,
        )
        audit_record(
            actor=actor,
            action="snapshot.build_requested",
            object_type="snapshot_build",
            object_id=build.pk,
            after={"dataset": dataset.slug, "rows_expected": expected},
        )
        transaction.on_commit(lambda: build_snapshot.delay(build.pk))
    return build


def snapshot_create(
    *, dataset_id: int, filters: SnapshotFilter, actor: Actor, build_id: int | None = None
) -> DatasetSnapshot:
    """Build the next version of a dataset, whole, in one transaction.

    Locks the dataset row until commit, so versions of one dataset are built one at a time and
    numbered without gaps. With `build_id`, idempotent: a build that already produced its
    snapshot returns it. Raises ValidationError when no gold label matches.
    """
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset_id)
        build = SnapshotBuild.objects.select_for_update().get(pk=build_id) if build_id else None
        if build is not None and build.snapshot_id is not None:
            return build.snapshot  # type: ignore[return-value]
        previous = dataset.versions.order_by("-version").first()
        snapshot_id = _next_snapshot_id()
        excluded = _content_leaks(dataset, filters) if dataset.group_by == GROUP_BY_CONTENT else {}
        row_count = _insert_rows(snapshot_id, dataset, filters, exclude_items=sorted(excluded))
        if row_count == 0:
            raise ValidationError("No gold labels match this filter.")
        stats = snapshot_stats(snapshot_id)
        if dataset.group_by == GROUP_BY_CONTENT:
            stats["held_out_excluded"] = {split: list(excluded.values()).count(split) for split in ("dev", "test")}
            stats["held_out_excluded_items"] = sorted(excluded)[:_EXCLUDED_LISTED]
        stats["previous_version"] = previous.version if previous else None
        stats["diff_previous"] = diff_counts(snapshot_id, previous.pk) if previous else None
        snapshot = DatasetSnapshot.objects.create(
            id=snapshot_id,
            dataset=dataset,
            version=previous.version + 1 if previous else 1,
            filters=filters.to_json(),
            row_count=row_count,
            content_hash=content_hash(snapshot_id),
            stats=stats,
            split_definition=split_definition(
                salt=dataset.split_salt,
                group_by=dataset.group_by,
                train_percent=dataset.train_percent,
                dev_percent=dataset.dev_percent,
            ),
            created_by_id=actor.id,
            created_by_label=actor.label,
        )
        if build is not None:
            build.status, build.snapshot, build.finished_at = JobStatus.DONE, snapshot, timezone.now()
            build.save(update_fields=["status", "snapshot", "finished_at"])
        audit_record(
            actor=actor,
            action="snapshot.created",
            object_type="dataset_snapshot",
            object_id=snapshot.pk,
            after={
                "dataset": dataset.slug,
                "version": snapshot.version,
                "row_count": row_count,
                "content_hash": snapshot.content_hash,
                "filters": snapshot.filters,
            },
        )
        webhooks.event_emit(WebhookEvent.SNAPSHOT_READY, webhooks.snapshot_payload(snapshot))
    return snapshot


def _next_snapshot_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('exports_datasetsnapshot', 'id'))")
        return cursor.fetchone()[0]


_EXCLUDED_LISTED = 200  # item ids listed in stats; the counts cover all of them


def _content_leaks(dataset: Dataset, filters: SnapshotFilter) -> dict[int, str]:
    """Give the matching items their content groups; return the held-out ones to leave out (item → split)."""
    where, params = filters.where_sql()
    items_sql = "SELECT g.item_id " + _MATCHING.format(where=where)
    keyed = content_keys_assign(items_sql=items_sql, params=params)
    with connection.cursor() as cursor:
        cursor.execute(items_sql, params)
        members = {item for (item,) in cursor.fetchall()}
    return held_out_leaks(keyed=keyed, members=members, dataset=dataset)


def _insert_rows(snapshot_id: int, dataset: Dataset, filters: SnapshotFilter, *, exclude_items: list[int]) -> int:
    """Freeze the matching gold labels, numbered in canonical order (item id, policy key).

    `exclude_items` are left out (held-out items with a near duplicate in another split).
    """
    where, where_params = filters.where_sql()
    if exclude_items:
        where += " AND NOT (g.item_id = ANY(%s))"
        where_params.append(exclude_items)
    bucket, bucket_params = bucket_sql(group_by=dataset.group_by, salt=dataset.split_salt)
    split = split_case_sql("m.bucket", train_percent=dataset.train_percent, dev_percent=dataset.dev_percent)
    sql = f"""
        INSERT INTO exports_datasetsnapshotrow (snapshot_id, position, gold_label_id, split)
        SELECT %s, row_number() OVER (ORDER BY m.item_id, m.policy_key), m.id, {split}
        FROM (SELECT g.id, g.item_id, p.key AS policy_key, {bucket} AS bucket {_MATCHING.format(where=where)}) m
    """  # noqa: S608 (only fixed SQL fragments are interpolated; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [snapshot_id, *bucket_params, *where_params])
        return cursor.rowcount


def content_hash(snapshot_id: int) -> str:
    """sha256 of the canonical export: JSONL, every split, unredacted."""
    digest = hashlib.sha256()
    for data in jsonl(row_tuples(snapshot_id)):
        digest.update(data)
    return digest.hexdigest()


def snapshot_stats(snapshot_id: int) -> dict[str, Any]:
    """Split sizes, class balance per split, label-source mix and policy versions, in one scan."""
    sql = """
        SELECT r.split, p.key, pv.number, g.source, l.value, count(*), count(*) FILTER (WHERE coalesce(l.n, 1) = 1),
               GROUPING(r.split), GROUPING(p.key), GROUPING(pv.number), GROUPING(g.source), GROUPING(l.value)
        FROM exports_datasetsnapshotrow r
        JOIN labeling_goldlabel g ON g.id = r.gold_label_id
        JOIN labeling_policy p ON p.id = g.policy_id
        JOIN labeling_policyversion pv ON pv.id = g.policy_version_id
        LEFT JOIN LATERAL jsonb_array_elements_text(g.labels) WITH ORDINALITY l(value, n) ON TRUE
        WHERE r.snapshot_id = %s
        GROUP BY GROUPING SETS ((r.split, p.key, l.value), (r.split, g.source), (p.key, pv.number))
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [snapshot_id])
        rows = cursor.fetchall()
    class_balance: dict[str, dict[str, int]] = defaultdict(dict)
    sources: dict[str, dict[str, int]] = defaultdict(dict)
    policy_versions: list[dict[str, Any]] = []
    # `labels` counts label values (a row with two labels counts under each); `rows` counts rows.
    for split, policy, number, source, label, labels, row_count, *grouped in rows:
        if grouped == [0, 0, 1, 1, 0]:
            class_balance[split][f"{policy}:{label if label is not None else '(none)'}"] = labels
        elif grouped == [0, 1, 1, 0, 1]:
            sources[split][source] = row_count
        elif grouped == [1, 0, 0, 1, 1]:
            policy_versions.append({"policy": policy, "version": number, "rows": row_count})
    splits = {split: sum(counts.values()) for split, counts in sources.items()}
    return {
        "splits": dict(sorted(splits.items())),
        "class_balance": {split: dict(sorted(c.items())) for split, c in sorted(class_balance.items())},
        "label_sources": {split: dict(sorted(c.items())) for split, c in sorted(sources.items())},
        "policy_versions": sorted(policy_versions, key=lambda v: (v["policy"], v["version"])),
    }


# Rows whose gold label differs between two snapshots, matched by (item, policy). Rows with the
# same gold label id are identical (gold labels never change), so only the difference is joined.
_DIFF = """
    WITH a AS (
        SELECT gold_label_id AS id FROM exports_datasetsnapshotrow WHERE snapshot_id = %(new)s
        EXCEPT SELECT gold_label_id FROM exports_datasetsnapshotrow WHERE snapshot_id = %(old)s
    ), b AS (
        SELECT gold_label_id AS id FROM exports_datasetsnapshotrow WHERE snapshot_id = %(old)s
        EXCEPT SELECT gold_label_id FROM exports_datasetsnapshotrow WHERE snapshot_id = %(new)s
    ), an AS (
        SELECT g.id, g.item_id, g.policy_id, g.labels FROM a JOIN labeling_goldlabel g ON g.id = a.id
    ), bn AS (
        SELECT g.id, g.item_id, g.policy_id, g.labels FROM b JOIN labeling_goldlabel g ON g.id = b.id
    ), d AS (
        SELECT coalesce(an.item_id, bn.item_id) AS item_id, coalesce(an.policy_id, bn.policy_id) AS policy_id,
               CASE WHEN bn.id IS NULL THEN 'added' WHEN an.id IS NULL THEN 'removed'
                    WHEN an.labels <> bn.labels THEN 'relabelled' ELSE 'updated' END AS change,
               bn.labels AS old_labels, an.labels AS new_labels, bn.id AS old_gold_label_id, an.id AS new_gold_label_id
        FROM an FULL JOIN bn ON an.item_id = bn.item_id AND an.policy_id = bn.policy_id
    )
"""
_DIFF_ROWS = """
    SELECT d.item_id, i.source, i.external_id, p.key, d.change, d.old_labels, d.new_labels,
           d.old_gold_label_id, d.new_gold_label_id
    FROM d JOIN reviewapp_contentitem i ON i.id = d.item_id JOIN labeling_policy p ON p.id = d.policy_id
    WHERE {where} ORDER BY d.item_id, p.key LIMIT %(limit)s
"""
CHANGES = ("added", "removed", "relabelled", "updated")


def diff_counts(new_snapshot_id: int, old_snapshot_id: int) -> dict[str, int]:
    """How many rows were added, removed, relabelled, or updated (new gold version, same labels)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _DIFF + "SELECT change, count(*) FROM d GROUP BY change",  # noqa: S608 (fixed SQL)
            {"new": new_snapshot_id, "old": old_snapshot_id},
        )
        found = dict(cursor.fetchall())
    return {change: found.get(change, 0) for change in CHANGES}


@dataclass
class DiffPage:
    counts: dict[str, int]
    rows: list[dict[str, Any]] = field(default_factory=list)
    next_after: str | None = None


def snapshot_diff(
    new: DatasetSnapshot, old: DatasetSnapshot, *, limit: int = 100, change: str | None = None, after: str | None = None
) -> DiffPage:
    """Counts, and up to `limit` changed rows in (item id, policy key) order after `after` ('<item>:<policy>')."""
    params: dict[str, Any] = {"new": new.pk, "old": old.pk, "limit": limit + 1}
    conditions = ["TRUE"]
    if change:
        conditions.append("d.change = %(change)s")
        params["change"] = change
    if after:
        item, _, policy = after.partition(":")
        conditions.append("(d.item_id, p.key) > (%(after_item)s, %(after_policy)s)")
        params.update(after_item=int(item), after_policy=policy)
    where = " AND ".join(conditions)
    # Only fixed SQL fragments are joined in; every value is a parameter.
    sql = _DIFF + _DIFF_ROWS.format(where=where)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchall()
    names = (
        *("item_id", "source", "external_id", "policy", "change"),
        *("old_labels", "new_labels", "old_gold_label_id", "new_gold_label_id"),
    )
    rows = [_diff_row(dict(zip(names, row, strict=True))) for row in found[:limit]]
    next_after = f"{rows[-1]['item_id']}:{rows[-1]['policy']}" if len(found) > limit else None
    counts = new.stats.get("diff_previous") if new.stats.get("previous_version") == old.version else None
    return DiffPage(counts=counts or diff_counts(new.pk, old.pk), rows=rows, next_after=next_after)


def _diff_row(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("old_labels", "new_labels"):
        if isinstance(row[key], str):
            row[key] = orjson.loads(row[key])
    return row
