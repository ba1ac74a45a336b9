"""Readers for public moderation datasets, in plain Python (standard library only).

Nothing here imports Django: the ML benchmarks read the same files without a configured project.
Each reader is a generator of `DatasetRecord`s — one item to review with every crowd label it
received — and stops after `limit` records, so a prefix of a file is always the same prefix.

Files are decoded as UTF-8 with an optional byte-order mark. Records whose text is empty are
skipped; pass a `ReadStats` to learn how many were skipped and what was cleaned on the way.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

TOXIC_SPANS = "toxic-spans"
CONVABUSE = "convabuse"

# Toxic Spans used 3 to 7 crowd workers per comment; the one comment far above that (id 6209917,
# 357 annotations) was a quiz question shown to every candidate worker, not a normal item.
TOXIC_SPANS_MAX_ANNOTATIONS = 20
# How a Toxic Spans worker's row becomes a label; see `read_toxic_spans`.
ToxicRule = Literal["highlighted", "dataset"]
TOXIC_RULES: tuple[ToxicRule, ...] = ("highlighted", "dataset")
TOXIC_SPANS_TYPES = ("Insult", "Threat", "Identity based Attack", "Profane/Obscene", "Other Toxicity")
UNTYPED_SPAN = "Untyped"

CONVABUSE_FILE = "ConvAbuseEMNLPfull.csv"
CONVABUSE_SPLITS = ("train", "valid", "test")
# is_abuse.<n> one-hot columns: n → (label, severity).
CONVABUSE_SEVERITY = {
    "1": ("not_abusive", None),
    "0": ("ambiguous", None),
    "-1": ("abusive", "mild"),
    "-2": ("abusive", "strong"),
    "-3": ("abusive", "very_strong"),
}
# The dataset README calls these `directness.*` and `type.sexism`; the file says `direction.*` and
# `type.sexist`. Grouping columns by prefix accepts either spelling.
CONVABUSE_MULTI = {"type.": "types", "target.": "targets", "direction.": "directions", "directness.": "directions"}


class DatasetError(ValueError):
    """A dataset file cannot be read as asked: a missing column, a malformed line, bad encoding."""


@dataclass
class AnnotatorLabel:
    annotator: str  # stable annotator/worker id from the file
    label: str  # e.g. "toxic"/"not_toxic", or ConvAbuse "abusive"/"not_abusive"/"ambiguous"
    severity: str | None = None  # ConvAbuse: "mild"/"strong"/"very_strong" where given
    spans: list[dict[str, Any]] = field(default_factory=list)  # [{"start", "end", "label"}]
    extra: dict[str, Any] = field(default_factory=dict)  # other per-annotator fields


@dataclass
class DatasetRecord:
    source: str  # "toxic-spans", "convabuse", or the file stem for csv/jsonl
    external_id: str
    text: str
    context: list[dict[str, str]]  # [{"author": ..., "text": ...}] earlier turns
    metadata: dict[str, Any]  # {"dataset": ..., "language": "en", ...}
    annotations: list[AnnotatorLabel]
    label: str | None  # reference label: the file's label column, or the crowd majority (ties → None)


@dataclass
class ReadStats:
    """What a reader did besides yielding records. Filled in as the generator runs."""

    records: int = 0
    skipped_empty: int = 0
    excluded: list[str] = field(default_factory=list)  # "<id>: <why>"
    spans_cleaned: int = 0  # blank or truncated span types repaired, duplicate spans merged
    spans_dropped: int = 0  # spans whose offsets do not lie inside the text
    annotations_dropped: int = 0  # annotator rows that carry no readable label


def majority_label(annotations: Iterable[AnnotatorLabel]) -> str | None:
    """The most frequent label among each annotator's first answer; None on a tie or no answers.

    Repeat answers by the same annotator do not vote again: they measure that annotator's
    consistency, not extra evidence about the item.
    """
    first: dict[str, str] = {}
    for annotation in annotations:
        first.setdefault(annotation.annotator, annotation.label)
    ranked = Counter(first.values()).most_common(2)
    if not ranked or (len(ranked) == 2 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


# --- shared file handling ------------------------------------------------------------------


def _open_text(path: Path) -> IO[str]:
    if not path.is_file():
        raise DatasetError(f"{path} does not exist or is not a file")
    # utf-8-sig drops a byte-order mark that spreadsheet exports put in front of the header.
    return path.open(encoding="utf-8-sig", errors="strict", newline="")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; decoding and CSV errors become DatasetError."""
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError as error:
            raise _not_utf8(path, reader.line_num + 1, error) from None
        except csv.Error as error:
            raise DatasetError(f"{path}, line {reader.line_num}: {error}") from None


def _csv_header(path: Path) -> list[str]:
    with _open_text(path) as handle:
        try:
            return next(csv.reader(handle), [])
        except UnicodeDecodeError as error:
            raise _not_utf8(path, 1, error) from None
        except csv.Error as error:
            raise DatasetError(f"{path}: cannot read the header line ({error})") from None


def _not_utf8(path: Path, line: int, error: UnicodeDecodeError) -> DatasetError:
    # Decoding runs ahead of parsing in blocks, so the line is where reading stopped, not exact.
    return DatasetError(f"{path} is not valid UTF-8 (near line {line}: {error.reason}); re-encode it as UTF-8")


def _require_columns(path: Path, found: Iterable[str], wanted: Iterable[str]) -> None:
    found = list(found)
    missing = [name for name in wanted if name not in found]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise DatasetError(f"{path.name} has no column {names}; columns found: {', '.join(found) or 'none'}")


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise DatasetError(f"limit must be >= 0, got {limit}")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "t", "y")


# --- Toxic Spans --------------------------------------------------------------------------


def read_toxic_spans(
    root: Path, limit: int | None = None, *, stats: ReadStats | None = None, toxic_rule: ToxicRule = "highlighted"
) -> Iterator[DatasetRecord]:
    """Toxic Spans (Pavlopoulos et al., ACL 2022; CC0): one record per comment, in file order.

    Joins data_comments.csv, data_annotations.csv and data_spans.csv from `root`.

    Per-worker label, by `toxic_rule`:
    - "highlighted" (default): "toxic" when the worker highlighted a span, or ticked "all toxic"
      without ticking "not toxic"; otherwise "not_toxic". A label of toxic rests on evidence the
      worker marked, which is what the review workspace asks of reviewers (highlight the toxic
      part) and what the dataset's span ground truth is built from; it is also the rule every
      figure measured on this data so far used, so changing the default would silently change
      them.
    - "dataset": the authors' convention (the dataset's ACL 2022 README): workers were told to
      tick "not toxic" when they judged a post not toxic, and that a toxic post may have no span
      to highlight. So a worker counts as toxic unless they ticked "not toxic".
    On the published files (58,858 labels after the quiz comment) the two rules disagree on
    1,905: 997 rows tick "not toxic" yet highlighted spans (toxic only by "highlighted"; in 16
    of them every span lies outside the text and is dropped as evidence, not as a vote), and
    908 rows tick nothing and highlight nothing (toxic only by "dataset").
    About a third of the rows tick both boxes and highlight nothing: not toxic by either rule,
    kept visible as `extra["flags_conflict"]`, with the raw flags. The rule is recorded in each
    record's `metadata["toxic_rule"]`.

    Cleaning: span types are stripped, truncated types ("Insu") completed to the one known type
    they start, blank types become "Untyped"; exact duplicate spans are merged; spans whose
    offsets do not lie inside the comment are dropped (the worker's label still counts them).
    Counted in `stats`.

    Excluded: comments with more than 20 annotations — in the published files only comment
    6209917, a quiz question answered by 357 candidate workers, which would otherwise dominate
    per-worker statistics. Its id is listed in `stats.excluded`.
    """
    _check_limit(limit)
    if toxic_rule not in TOXIC_RULES:
        raise DatasetError(f"toxic_rule must be one of {', '.join(TOXIC_RULES)}, got {toxic_rule!r}")
    stats = stats if stats is not None else ReadStats()
    root = Path(root)
    spans = _toxic_spans_by_annotation(root / "data_spans.csv", stats)
    annotations = _toxic_annotations_by_comment(root / "data_annotations.csv")
    comments_path = root / "data_comments.csv"
    _require_columns(comments_path, _csv_header(comments_path), ("comment_id", "comment_text"))
    for _, row in _csv_rows(comments_path):
        if limit is not None and stats.records >= limit:
            return
        comment_id = (row.get("comment_id") or "").strip()
        text = row.get("comment_text") or ""
        rows = annotations.get(comment_id, [])
        if len(rows) > TOXIC_SPANS_MAX_ANNOTATIONS:
            stats.excluded.append(f"{comment_id}: quiz comment with {len(rows)} annotations")
            continue
        if not comment_id or not text.strip():
            stats.skipped_empty += 1
            continue
        labels = [_toxic_label(r, spans.get(r["annotation"], []), len(text), stats, toxic_rule) for r in rows]
        stats.records += 1
        yield DatasetRecord(
            source=TOXIC_SPANS,
            external_id=comment_id,
            text=text,
            context=[],
            metadata={
                "dataset": TOXIC_SPANS,
                "language": "en",
                "license": "CC0-1.0",
                "origin": "Civil Comments",
                "toxic_rule": toxic_rule,  # which rule made the per-worker labels and `label`
            },
            annotations=labels,
            label=majority_label(labels),
        )


def _toxic_spans_by_annotation(path: Path, stats: ReadStats) -> dict[str, list[dict[str, Any]]]:
    _require_columns(path, _csv_header(path), ("annotation", "type", "start", "end"))
    spans: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, row in _csv_rows(path):
        try:
            start, end = int(row["start"]), int(row["end"])
        except (TypeError, ValueError):
            stats.spans_dropped += 1
            continue
        span_type = _clean_span_type(row.get("type"))
        if span_type != (row.get("type") or ""):
            stats.spans_cleaned += 1
        spans[(row.get("annotation") or "").strip()].append({"start": start, "end": end, "label": span_type})
    return spans


def _clean_span_type(raw: str | None) -> str:
    value = (raw or "").strip()
    if not value:
        return UNTYPED_SPAN
    if value in TOXIC_SPANS_TYPES:
        return value
    # A truncated export cut some type names short; complete a prefix only when it is unambiguous.
    candidates = [known for known in TOXIC_SPANS_TYPES if known.lower().startswith(value.lower())]
    return candidates[0] if len(candidates) == 1 else value


def _toxic_annotations_by_comment(path: Path) -> dict[str, list[dict[str, str]]]:
    wanted = ("annotation", "comment_id", "worker", "all toxic", "not toxic")
    _require_columns(path, _csv_header(path), wanted)
    by_comment: dict[str, list[dict[str, str]]] = defaultdict(list)
    for _, row in _csv_rows(path):
        row["annotation"] = (row.get("annotation") or "").strip()
        by_comment[(row.get("comment_id") or "").strip()].append(row)
    return by_comment


def _toxic_label(
    row: dict[str, str], raw_spans: list[dict[str, Any]], text_len: int, stats: ReadStats, rule: ToxicRule
) -> AnnotatorLabel:
    spans = _usable_spans(raw_spans, text_len, stats)
    all_toxic, not_toxic = _truthy(row.get("all toxic")), _truthy(row.get("not toxic"))
    # "highlighted": highlighting is the worker's act of judging the text toxic, even if the offsets were lost.
    toxic = (not not_toxic) if rule == "dataset" else (bool(raw_spans) or (all_toxic and not not_toxic))
    extra: dict[str, Any] = {"annotation_id": row["annotation"], "all_toxic": all_toxic, "not_toxic": not_toxic}
    if row.get("country"):
        extra["country"] = row["country"].strip()
    if (all_toxic and not_toxic) or (not_toxic and raw_spans):
        extra["flags_conflict"] = True
    return AnnotatorLabel(
        annotator=(row.get("worker") or "").strip(),
        label="toxic" if toxic else "not_toxic",
        spans=spans,
        extra=extra,
    )


def _usable_spans(raw_spans: list[dict[str, Any]], text_len: int, stats: ReadStats) -> list[dict[str, Any]]:
    """The spans that lie inside the text, sorted and without exact duplicates.

    A span reaching past the end of its comment was recorded against some other text (a few
    dozen rows start thousands of characters beyond a short comment), so its offsets cannot be
    trusted: it is dropped rather than clipped into invented evidence. Returns new dicts.
    """
    usable: dict[tuple[int, int, str], dict[str, Any]] = {}
    for span in raw_spans:
        start, end = span["start"], span["end"]
        if not 0 <= start < end <= text_len:
            stats.spans_dropped += 1
            continue
        key = (start, end, span["label"])
        if key in usable:
            stats.spans_cleaned += 1
            continue
        usable[key] = {"start": start, "end": end, "label": span["label"]}
    return [usable[key] for key in sorted(usable)]


# --- ConvAbuse ----------------------------------------------------------------------------


def read_convabuse(root: Path, limit: int | None = None, *, stats: ReadStats | None = None) -> Iterator[DatasetRecord]:
    """ConvAbuse (Cercas Curry et al., EMNLP 2021; CC BY 4.0, attribution required).

    One record per example — the key (conv_id, prev_agent, prev_user, agent, user) — in order of
    first appearance in ConvAbuseEMNLPfull.csv. The text is the user's turn; `context` holds the
    non-empty earlier turns (prev_agent, prev_user, agent) with the bot's name as agent author.

    Per-annotator labels come from the one-hot `is_abuse.*` columns: 1 → not_abusive,
    0 → ambiguous, -1/-2/-3 → abusive with severity mild/strong/very_strong. Abuse types,
    targets and directions go into `extra` as lists. A second or later answer by the same
    annotator on the same example is kept and marked `extra["repeat"] = True` (the dataset
    includes repeats to measure intra-annotator agreement); it does not vote in `label`.
    Rows with no (or several) `is_abuse` columns set are dropped and counted.

    `external_id` is the conversation id plus a hash of the example key, stable across runs.
    When the authors' split files sit beside the full file, `metadata["split"]` and
    `metadata["example_id"]` say where the example is in them. In the published files 4 examples
    are in no split and 2 are in both train and test (train is kept).
    """
    _check_limit(limit)
    stats = stats if stats is not None else ReadStats()
    root = Path(root)
    path = root / CONVABUSE_FILE
    header = _csv_header(path)
    _require_columns(path, header, ("annotator_id", "conv_id", "prev_agent", "prev_user", "agent", "user"))
    severity_columns = [c for c in header if c.startswith("is_abuse.")]
    if not severity_columns:
        raise DatasetError(f"{path.name} has no is_abuse.* columns; columns found: {', '.join(header)}")
    examples: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for _, row in _csv_rows(path):
        examples.setdefault(_convabuse_key(row), []).append(row)
    splits = _convabuse_splits(root)
    for key, rows in examples.items():
        if limit is not None and stats.records >= limit:
            return
        if not key[4].strip():
            stats.skipped_empty += 1
            continue
        labels = _convabuse_labels(rows, header, stats)
        stats.records += 1
        yield _convabuse_record(key, rows[0], labels, splits.get(key))


def _convabuse_key(row: dict[str, str]) -> tuple[str, str, str, str, str]:
    def cell(name: str) -> str:
        return row.get(name) or ""

    return (cell("conv_id"), cell("prev_agent"), cell("prev_user"), cell("agent"), cell("user"))


def _convabuse_record(
    key: tuple[str, ...], first: dict[str, str], labels: list[AnnotatorLabel], split: tuple[str, str] | None
) -> DatasetRecord:
    conv_id, prev_agent, prev_user, agent, user = key
    bot = (first.get("bot") or "").strip() or "agent"
    turns = [(bot, prev_agent), ("user", prev_user), (bot, agent)]
    metadata: dict[str, Any] = {
        "dataset": CONVABUSE,
        "language": "en",
        "license": "CC-BY-4.0",
        "attribution": "ConvAbuse, Cercas Curry, Abercrombie and Rieser, EMNLP 2021",
        "conv_id": conv_id,
        "bot": bot,
    }
    if split is not None:
        metadata["split"], metadata["example_id"] = split
    return DatasetRecord(
        source=CONVABUSE,
        external_id=_convabuse_external_id(key),
        text=user,
        context=[{"author": author, "text": text} for author, text in turns if text.strip()],
        metadata=metadata,
        annotations=labels,
        label=majority_label(labels),
    )


def _convabuse_external_id(key: tuple[str, ...]) -> str:
    conv_id = key[0].strip()
    # conv_ids of the ELIZA conversations went through a float column upstream ("245846.0").
    if conv_id.endswith(".0") and conv_id[:-2].isdigit():
        conv_id = conv_id[:-2]
    digest = hashlib.sha256("\x1f".join(key).encode("utf-8")).hexdigest()[:12]
    return f"{conv_id[:200]}-{digest}"


def _convabuse_labels(rows: list[dict[str, str]], header: list[str], stats: ReadStats) -> list[AnnotatorLabel]:
    labels: list[AnnotatorLabel] = []
    seen: set[str] = set()
    for row in rows:
        chosen = [c.removeprefix("is_abuse.") for c in header if c.startswith("is_abuse.") and _truthy(row.get(c))]
        if len(chosen) != 1 or chosen[0] not in CONVABUSE_SEVERITY:
            stats.annotations_dropped += 1
            continue
        label, severity = CONVABUSE_SEVERITY[chosen[0]]
        annotator = (row.get("annotator_id") or "").strip()
        extra: dict[str, Any] = {"example_no": (row.get("example_no") or "").strip()}
        for prefix, name in CONVABUSE_MULTI.items():
            values = [c.removeprefix(prefix) for c in header if c.startswith(prefix) and _truthy(row.get(c))]
            if values:
                extra.setdefault(name, []).extend(values)
        if annotator in seen:
            extra["repeat"] = True
        seen.add(annotator)
        labels.append(AnnotatorLabel(annotator=annotator, label=label, severity=severity, extra=extra))
    return labels


def _convabuse_splits(root: Path) -> dict[tuple[str, ...], tuple[str, str]]:
    """Example key → (split, example_id) from the authors' split files that exist in `root`."""
    splits: dict[tuple[str, ...], tuple[str, str]] = {}
    for split in CONVABUSE_SPLITS:
        path = root / f"ConvAbuseEMNLP{split}.csv"
        if not path.is_file():
            continue
        for _, row in _csv_rows(path):
            example_id = (row.get("example_id") or "").strip().removesuffix(".0")
            splits.setdefault(_convabuse_key(row), (split, example_id))
    return splits


# --- generic CSV / JSONL ------------------------------------------------------------------

DEFAULT_LABEL_COL = "label"
DEFAULT_ID_COL = "id"


def read_table(
    path: Path,
    fmt: Literal["csv", "jsonl"],
    text_col: str = "text",
    label_col: str | None = DEFAULT_LABEL_COL,
    id_col: str | None = DEFAULT_ID_COL,
    limit: int | None = None,
    *,
    stats: ReadStats | None = None,
) -> Iterator[DatasetRecord]:
    """Records from any CSV or JSONL file with a text column and optionally label and id columns.

    `source` is the file stem. A row with a blank id gets its 0-based row number (blank JSONL
    lines are not rows). The text column must exist (DatasetError naming it and the columns
    found); so must a label or id column named explicitly, while the defaults "label" and "id"
    are used only when present. A line that is not a JSON object raises DatasetError with its
    line number. A "language" or "lang" column, when present, becomes `metadata["language"]`.
    """
    _check_limit(limit)
    stats = stats if stats is not None else ReadStats()
    path = Path(path)
    if fmt == "csv":
        rows = _table_csv_rows(path, text_col, label_col, id_col)
    elif fmt == "jsonl":
        rows = _table_jsonl_rows(path, text_col, label_col, id_col)
    else:
        raise DatasetError(f"unknown table format {fmt!r}; expected 'csv' or 'jsonl'")
    for index, row in enumerate(rows):
        if limit is not None and stats.records >= limit:
            return
        record = _table_record(path.stem, index, row, text_col, label_col, id_col)
        if record is None:
            stats.skipped_empty += 1
            continue
        stats.records += 1
        yield record


def _optional_columns(label_col: str | None, id_col: str | None) -> list[str]:
    """Columns named explicitly (not the defaults), which must therefore exist."""
    named = [(label_col, DEFAULT_LABEL_COL), (id_col, DEFAULT_ID_COL)]
    return [col for col, default in named if col is not None and col != default]


def _table_csv_rows(path: Path, text_col: str, label_col: str | None, id_col: str | None) -> Iterator[dict[str, Any]]:
    _require_columns(path, _csv_header(path), [text_col, *_optional_columns(label_col, id_col)])
    for _, row in _csv_rows(path):
        yield row


def _table_jsonl_rows(path: Path, text_col: str, label_col: str | None, id_col: str | None) -> Iterator[dict[str, Any]]:
    required = [text_col, *_optional_columns(label_col, id_col)]
    with _open_text(path) as handle:
        line_number = 0
        try:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                row = _json_object(path, line_number, line)
                missing = [name for name in required if name not in row]
                if missing:
                    names, found = ", ".join(repr(m) for m in missing), ", ".join(row) or "none"
                    raise DatasetError(f"{path.name}, line {line_number} has no field {names}; fields found: {found}")
                yield row
        except UnicodeDecodeError as error:
            raise _not_utf8(path, line_number + 1, error) from None


def _json_object(path: Path, line_number: int, line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path.name}, line {line_number}: invalid JSON ({error.msg})") from None
    if not isinstance(value, dict):
        raise DatasetError(f"{path.name}, line {line_number}: expected a JSON object, got {type(value).__name__}")
    return value


def _table_record(
    source: str, index: int, row: dict[str, Any], text_col: str, label_col: str | None, id_col: str | None
) -> DatasetRecord | None:
    text = _scalar_text(row.get(text_col), text_col, index)
    if not text.strip():
        return None
    external_id = _scalar_text(row.get(id_col), id_col or "id", index).strip() if id_col else ""
    label = _scalar_text(row.get(label_col), label_col or "label", index).strip() if label_col else ""
    metadata: dict[str, Any] = {"dataset": source, "row": index}
    language = _scalar_text(row.get("language", row.get("lang")), "language", index).strip()
    if language:
        metadata["language"] = language
    return DatasetRecord(
        source=source,
        external_id=external_id or str(index),
        text=text,
        context=[],
        metadata=metadata,
        annotations=[],
        label=label or None,
    )


def _scalar_text(value: Any, column: str, index: int) -> str:
    """A cell as text: None is empty, JSON booleans are lower-case, objects are rejected."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise DatasetError(f"row {index}: column {column!r} holds a {type(value).__name__}, expected text")
