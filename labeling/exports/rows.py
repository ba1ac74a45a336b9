"""The canonical rows of a snapshot: one per frozen gold label, in position order.

Every export format and the content hash read rows from here, so they cannot disagree. Rows are
read in keyset-paginated chunks over the snapshot's primary key (snapshot_id, position): each
chunk is one short indexed query returning tuples (no ORM objects), memory stays at one chunk
whatever the snapshot's size, and no transaction or snapshot is held open while a slow client
downloads. That is safe because a snapshot's rows, and the gold labels they point to, never
change.

`snapshot_rows(snapshot, split=None)` is the plain Python entry point (training jobs use it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from django.conf import settings
from django.db import connection

from .models import DatasetSnapshot
from .redaction import redact_context, redact_text

# (field, SQL) in the column order of CSV and Parquet; JSONL sorts keys. JSON_FIELDS arrive as
# text (Django's connection does not parse jsonb), in PostgreSQL's normalised jsonb form.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("item_id", "i.id"),
    ("source", "i.source"),
    ("external_id", "i.external_id"),
    ("modality", "i.modality"),
    ("title", "i.title"),
    ("text", "i.text"),
    ("media_urls", "i.media_urls"),
    ("context", "i.context"),
    ("language", "i.metadata ->> 'language'"),
    ("region", "i.metadata ->> 'region'"),
    ("policy", "p.key"),
    ("policy_version", "pv.number"),
    ("labels", "g.labels"),
    ("severity", "g.severity"),
    ("label_source", "g.source"),
    ("gold_label_id", "g.id"),
    ("gold_version", "g.version"),
    ("annotation_ids", "g.annotation_ids"),
    ("n_annotations", "g.n_annotations"),
    ("agreement", "g.agreement"),
    ("adjudicator", "u.username"),
    ("route", "g.route"),
    ("routing_outcome", "g.routing_outcome"),
    ("sampling_propensity", "g.sampling_propensity"),
    # Formatted by the database: a fixed, timezone-free text form (UTC, microseconds).
    ("created_at", """to_char(g.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""),
    ("split", "r.split"),
)
FIELDS: tuple[str, ...] = tuple(name for name, _ in COLUMNS)
JSON_FIELDS = ("media_urls", "context", "labels", "annotation_ids")
_JSON_INDEXES = tuple(FIELDS.index(name) for name in JSON_FIELDS)

_FROM = """
    FROM exports_datasetsnapshotrow r
    JOIN labeling_goldlabel g ON g.id = r.gold_label_id
    JOIN reviewapp_contentitem i ON i.id = g.item_id
    JOIN labeling_policy p ON p.id = g.policy_id
    JOIN labeling_policyversion pv ON pv.id = g.policy_version_id
    LEFT JOIN auth_user u ON u.id = g.adjudicator_id
"""
_SELECT = "SELECT r.position, " + ", ".join(sql for _, sql in COLUMNS) + _FROM
# A window of positions: an index range scan whatever the planner knows about the table (a fresh
# snapshot has no statistics yet). Positions are 1..row_count without gaps, so a window of all
# splits holds exactly `chunk_rows` rows and a window of one split about its share of them.
_WINDOW = _SELECT + "WHERE r.snapshot_id = %s AND r.position > %s AND r.position <= %s {split} ORDER BY r.position"
_WINDOW_ALL = _WINDOW.format(split="")
_WINDOW_SPLIT = _WINDOW.format(split="AND r.split = %s")


def reference_sql(snapshot_id: int, split: str | None = None) -> str:
    """The whole export as one SELECT (for COPY … TO STDOUT in the benchmark); ids are ints."""
    where = f"WHERE r.snapshot_id = {int(snapshot_id)}"
    if split:
        where += f" AND r.split = '{_checked_split(split)}'"
    return _SELECT + where + " ORDER BY r.position"


def _checked_split(split: str) -> str:
    if split not in ("train", "dev", "test"):
        raise ValueError(f"unknown split {split!r}")
    return split


def row_tuples(snapshot_id: int, split: str | None = None, chunk_rows: int | None = None) -> Iterator[list[tuple]]:
    """Chunks of raw row tuples (position first, then FIELDS; JSON fields still as text)."""
    size = chunk_rows or settings.EXPORT_CHUNK_ROWS
    last = _last_position(snapshot_id)
    for after in range(0, last, size):
        with connection.cursor() as cursor:
            if split:
                cursor.execute(_WINDOW_SPLIT, [snapshot_id, after, after + size, _checked_split(split)])
            else:
                cursor.execute(_WINDOW_ALL, [snapshot_id, after, after + size])
            chunk = cursor.fetchall()
        if chunk:
            yield chunk


def _last_position(snapshot_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(position) FROM exports_datasetsnapshotrow WHERE snapshot_id = %s", [snapshot_id])
        return cursor.fetchone()[0] or 0


def decode(raw: tuple, *, redact_pii: bool = False) -> dict[str, Any]:
    """A raw row tuple as a dict of FIELDS with its JSON fields parsed (optionally redacted)."""
    values = list(raw[1:])
    for index in _JSON_INDEXES:
        values[index] = orjson.loads(values[index])
    row = dict(zip(FIELDS, values, strict=True))
    return redact_row(row) if redact_pii else row


def redact_row(row: dict[str, Any]) -> dict[str, Any]:
    row["title"] = redact_text(row["title"])
    row["text"] = redact_text(row["text"])
    row["context"] = redact_context(row["context"])
    return row


def row_chunks(
    snapshot_id: int, *, split: str | None = None, redact_pii: bool = False, chunk_rows: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Chunks of canonical row dicts."""
    for chunk in row_tuples(snapshot_id, split, chunk_rows):
        yield [decode(raw, redact_pii=redact_pii) for raw in chunk]


def snapshot_rows(
    snapshot: DatasetSnapshot | int, split: str | None = None, *, redact_pii: bool = False
) -> Iterator[dict[str, Any]]:
    """Every row of a snapshot as a dict, in canonical order (item id, then policy key).

    Keys are FIELDS; `labels` is a list of label values, `split` one of train/dev/test.
    Memory stays at one chunk (settings.EXPORT_CHUNK_ROWS rows) however large the snapshot.
    """
    snapshot_id = snapshot if isinstance(snapshot, int) else snapshot.pk
    for chunk in row_chunks(snapshot_id, split=split, redact_pii=redact_pii):
        yield from chunk
