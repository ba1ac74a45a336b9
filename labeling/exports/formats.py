"""Export formats: each turns chunks of canonical rows into chunks of bytes.

The bytes depend only on the rows (never on chunk sizes or on which path, streaming or
background job, asked for them), so one snapshot variant always exports the same bytes.

- JSONL, the canonical form: one object per line, top-level keys sorted, compact separators,
  UTF-8, floats in shortest round-trip form (orjson); the JSON-typed fields (labels, media_urls,
  context, annotation_ids) exactly as PostgreSQL's jsonb stores them (keys ordered by length
  then bytes, ", " and ": " separators), embedded without being parsed: this is the hot path of
  million-row exports. The content hash of a snapshot is the sha256 of its JSONL export of every
  split, unredacted.
- CSV: RFC 4180 (CRLF, quoted where needed), a header of FIELDS; lists and objects as JSON.
  The exact cell values, for machines: a spreadsheet would evaluate a cell such as `=HYPERLINK(…)`.
- CSV for spreadsheets (`csv-excel`): the same, except that every cell starting with `=`, `+`,
  `-`, `@`, a tab or a carriage return gets a leading `'` (OWASP's CSV injection advice), so
  Excel, LibreOffice and Google Sheets show it as text instead of running it as a formula. Those
  text cells no longer hold the exact value (numbers are left alone): use `csv` for code.
- Parquet: typed columns (lists as lists, `context` as JSON text), zstd, a row group every
  PARQUET_ROW_GROUP_ROWS rows. Parquet's footer comes last, but row groups are complete on
  their own, so the writer streams each one as it fills. Byte-stable for a given pyarrow
  version (the footer names it); requirements.txt pins it.
- Label Studio: a JSON array of tasks in Label Studio interop's shape
  (`labeling.labelstudio.labelconfig.ls_json_tasks`): `data` = text, context and external id,
  the gold label as a ground-truth annotation, every other field of the row in `meta`. Import
  each policy version's rows into a project configured with `label_config_for(version)`.
"""

from __future__ import annotations

import csv
import io
import json
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from labeling.labelstudio.labelconfig import ExportRow, ls_json_tasks
from labeling.models import PolicyVersion

from .models import ExportFormat
from .redaction import redact_context, redact_text
from .rows import FIELDS, JSON_FIELDS, decode

JSON_OPTIONS = orjson.OPT_SORT_KEYS
PARQUET_ROW_GROUP_ROWS = 50_000

CONTENT_TYPES: dict[str, str] = {
    ExportFormat.JSONL: "application/x-ndjson",
    ExportFormat.CSV: "text/csv; charset=utf-8",
    ExportFormat.CSV_EXCEL: "text/csv; charset=utf-8",
    ExportFormat.PARQUET: "application/vnd.apache.parquet",
    ExportFormat.LABEL_STUDIO: "application/json",
}
EXTENSIONS: dict[str, str] = {
    ExportFormat.JSONL: "jsonl",
    ExportFormat.CSV: "csv",
    ExportFormat.CSV_EXCEL: "spreadsheet.csv",
    ExportFormat.PARQUET: "parquet",
    ExportFormat.LABEL_STUDIO: "label-studio.json",
}

RawChunks = Iterable[list[tuple]]

# JSONL builds each object in sorted key order from the raw tuple (position first).
_SORTED = sorted(range(len(FIELDS)), key=lambda index: FIELDS[index])
_SORTED_FIELDS = tuple(FIELDS[index] for index in _SORTED)
_pick_sorted = operator.itemgetter(*(index + 1 for index in _SORTED))
_JSON_AT = tuple(_SORTED_FIELDS.index(name) for name in JSON_FIELDS)
_TEXT_AT = tuple(_SORTED_FIELDS.index(name) for name in ("title", "text"))
_CONTEXT_AT = _SORTED_FIELDS.index("context")


def jsonl(chunks: RawChunks, redact_pii: bool = False) -> Iterator[bytes]:
    fragment, dumps, newline = orjson.Fragment, orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for chunk in chunks:
        lines = []
        for raw in chunk:
            values = list(_pick_sorted(raw))
            if redact_pii:
                _redact_sorted(values)
            for index in _JSON_AT:
                values[index] = fragment(values[index])
            lines.append(dumps(dict(zip(_SORTED_FIELDS, values, strict=True)), option=newline))
        yield b"".join(lines)


def _redact_sorted(values: list[Any]) -> None:
    for index in _TEXT_AT:
        values[index] = redact_text(values[index])
    context = orjson.loads(values[_CONTEXT_AT])
    redacted = redact_context(context)
    if redacted != context:
        values[_CONTEXT_AT] = jsonb_text(redacted)


def jsonb_text(value: Any) -> str:
    """`value` rendered the way PostgreSQL renders jsonb (for values the export has to change)."""
    return json.dumps(_jsonb_order(value), ensure_ascii=False, separators=(", ", ": "))


def _jsonb_order(value: Any) -> Any:
    if isinstance(value, dict):
        ordered = sorted(value.items(), key=lambda item: (len(item[0].encode()), item[0].encode()))
        return {key: _jsonb_order(inner) for key, inner in ordered}
    if isinstance(value, list):
        return [_jsonb_order(inner) for inner in value]
    return value


def _dicts(chunks: RawChunks, redact_pii: bool) -> Iterator[list[dict[str, Any]]]:
    for chunk in chunks:
        yield [decode(raw, redact_pii=redact_pii) for raw in chunk]


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return orjson.dumps(value, option=JSON_OPTIONS).decode()
    return value


# A spreadsheet reads a cell starting with one of these as a formula (tab and CR: some strip them first).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> Any:
    """A text cell with a leading `'` when a spreadsheet would evaluate it; anything else unchanged.

    Numbers come from typed columns, never from content, and a spreadsheet reads `-0.5` as the
    number it is, so they stay numbers.
    """
    if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS):
        return "'" + cell
    return cell


def _csv_chunks(chunks: RawChunks, redact_pii: bool, cell: Callable[[Any], Any] | None) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # excel dialect: RFC 4180, CRLF line ends
    writer.writerow(FIELDS)  # plain names: nothing to neutralise
    for rows in _dicts(chunks, redact_pii):
        if cell is None:
            writer.writerows([[_csv_value(row[name]) for name in FIELDS] for row in rows])
        else:
            writer.writerows([[cell(_csv_value(row[name])) for name in FIELDS] for row in rows])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # only the header: an empty export
        yield buffer.getvalue().encode()


def csv_rows(chunks: RawChunks, redact_pii: bool = False) -> Iterator[bytes]:
    """The canonical CSV: every cell exactly as the row holds it."""
    return _csv_chunks(chunks, redact_pii, None)


def csv_spreadsheet(chunks: RawChunks, redact_pii: bool = False) -> Iterator[bytes]:
    """The CSV for spreadsheets: cells a spreadsheet would run as formulas are prefixed with `'`."""
    return _csv_chunks(chunks, redact_pii, spreadsheet_safe)


PARQUET_SCHEMA = pa.schema(
    [
        ("item_id", pa.int64()),
        ("source", pa.string()),
        ("external_id", pa.string()),
        ("modality", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("media_urls", pa.list_(pa.string())),
        ("context", pa.string()),
        ("language", pa.string()),
        ("region", pa.string()),
        ("policy", pa.string()),
        ("policy_version", pa.int32()),
        ("labels", pa.list_(pa.string())),
        ("severity", pa.string()),
        ("label_source", pa.string()),
        ("gold_label_id", pa.int64()),
        ("gold_version", pa.int32()),
        ("annotation_ids", pa.list_(pa.int64())),
        ("n_annotations", pa.int32()),
        ("agreement", pa.float64()),
        ("adjudicator", pa.string()),
        ("route", pa.string()),
        ("routing_outcome", pa.string()),
        ("sampling_propensity", pa.float64()),
        ("created_at", pa.string()),
        ("split", pa.string()),
    ]
)
assert tuple(PARQUET_SCHEMA.names) == FIELDS


class _StreamSink:
    """A write-only file for pyarrow that hands out what was written since the last `take()`."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self._buffer = bytes(self._buffer), bytearray()
        return data


def _parquet_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    context = [orjson.dumps(row["context"], option=JSON_OPTIONS).decode() for row in rows]
    columns = {name: [row[name] for row in rows] for name in FIELDS if name != "context"}
    columns["context"] = context
    return pa.RecordBatch.from_pydict(columns, schema=PARQUET_SCHEMA)


def parquet(chunks: RawChunks, redact_pii: bool = False) -> Iterator[bytes]:
    sink = _StreamSink()
    writer = pq.ParquetWriter(
        sink,
        PARQUET_SCHEMA,
        version="2.6",
        compression="zstd",
        compression_level=3,
        use_dictionary=True,
        write_statistics=True,
    )
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for rows in _dicts(chunks, redact_pii):
        pending.append(_parquet_batch(rows))
        pending_rows += len(rows)
        while pending_rows >= PARQUET_ROW_GROUP_ROWS:
            table = pa.Table.from_batches(pending, schema=PARQUET_SCHEMA)
            writer.write_table(table.slice(0, PARQUET_ROW_GROUP_ROWS), row_group_size=PARQUET_ROW_GROUP_ROWS)
            rest = table.slice(PARQUET_ROW_GROUP_ROWS)
            pending, pending_rows = rest.to_batches(), rest.num_rows
            yield sink.take()
    if pending_rows:
        writer.write_table(pa.Table.from_batches(pending, schema=PARQUET_SCHEMA), row_group_size=pending_rows)
    writer.close()
    yield sink.take()


def label_studio(chunks: RawChunks, redact_pii: bool = False) -> Iterator[bytes]:
    versions: dict[tuple[str, int], PolicyVersion] = {}

    def version_of(row: dict[str, Any]) -> PolicyVersion:
        key = (row["policy"], row["policy_version"])
        if key not in versions:
            versions[key] = PolicyVersion.objects.select_related("policy").get(policy__key=key[0], number=key[1])
        return versions[key]

    first = True
    for rows in _dicts(chunks, redact_pii):
        parts = []
        for task in ls_json_tasks(label_studio_row(row, version_of(row)) for row in rows):
            parts.append(b"[\n" if first else b",\n")
            parts.append(orjson.dumps(task, option=JSON_OPTIONS))
            first = False
        yield b"".join(parts)
    yield b"[]\n" if first else b"\n]\n"


def label_studio_row(row: dict[str, Any], version: PolicyVersion) -> ExportRow:
    """A canonical row as Label Studio interop's ExportRow; everything else travels in `meta`."""
    shown = ("text", "labels", "context", "severity", "external_id")
    return ExportRow(
        text=row["text"],
        labels=row["labels"],
        policy_version=version,
        context=row["context"],
        severity=row["severity"],
        external_id=row["external_id"],
        meta={name: value for name, value in row.items() if name not in shown},
    )


WRITERS: dict[str, Callable[[RawChunks, bool], Iterator[bytes]]] = {
    ExportFormat.JSONL: jsonl,
    ExportFormat.CSV: csv_rows,
    ExportFormat.CSV_EXCEL: csv_spreadsheet,
    ExportFormat.PARQUET: parquet,
    ExportFormat.LABEL_STUDIO: label_studio,
}
