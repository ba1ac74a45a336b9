"""Validation of ingest rows, in plain Python.

Every field of every row is checked here (types, ranges, sizes, text PostgreSQL cannot store)
before any SQL runs. It is hand-written rather than a DRF serializer because ingest validates
thousands of rows per request; the serializers in `reviewapp.api.serializers` describe the same
shape for the OpenAPI schema, and a test keeps the two in step.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.dateparse import parse_datetime

from ..content import is_own_static
from ..models import Modality

MAX_TEXT_CHARS = 100_000
MAX_MEDIA_URLS = 20
MAX_URL_CHARS = 2048
MAX_CONTEXT_TURNS = 50
MAX_METADATA_BYTES = 16_384
MAX_EMBEDDING_DIM = 4096
MAX_SPANS = 200
MAX_AUTHOR_CHARS = 255
# Deep enough for any real metadata; bounds the recursive checks and PostgreSQL's jsonb parser.
MAX_JSON_DEPTH = 32

ITEM_FIELDS = {
    "source",
    "external_id",
    "modality",
    "title",
    "text",
    "media_urls",
    "context",
    "metadata",
    "reach",
    "embedding",
    "author",
}
DECISION_FIELDS = {
    "policy",
    "model_name",
    "model_version",
    "score",
    "predicted_label",
    "evidence_spans",
    "decided_at",
}
MODALITIES = set(Modality.values)


class RowError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class ItemRow:
    source: str
    external_id: str
    modality: str = Modality.TEXT
    title: str = ""
    text: str = ""
    media_urls: list[str] = field(default_factory=list)
    context: list[dict[str, str]] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    reach: int = 0
    embedding: list[float] | None = None
    author_key: str = ""  # `author` in the API: the upstream author's pseudonymous key; "" when not sent


@dataclass
class DecisionRow:
    item: ItemRow
    policy_key: str
    model_name: str
    model_version: str
    score: float
    predicted_label: str = ""
    evidence_spans: list[dict[str, Any]] = field(default_factory=list)
    decided_at: datetime | None = None

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.item.source, self.item.external_id, self.policy_key, self.model_name, self.model_version)


def check_decision_row(raw: Any) -> DecisionRow:
    """Validate one POST /api/v1/decisions row; raise RowError naming the field at fault."""
    if not isinstance(raw, dict):
        raise RowError("", "each row must be a JSON object")
    unknown = sorted(storable_name(name) for name in set(raw) - ITEM_FIELDS - DECISION_FIELDS)
    if unknown:
        raise RowError(unknown[0], f"unknown field(s): {', '.join(unknown)}")
    item = check_item_fields(raw)
    row = DecisionRow(
        item=item,
        policy_key=_string(raw, "policy", required=True, max_len=64),
        model_name=_string(raw, "model_name", required=True, max_len=100),
        model_version=_string(raw, "model_version", required=True, max_len=100),
        score=_score(raw.get("score")),
        predicted_label=_string(raw, "predicted_label", max_len=100),
        evidence_spans=_spans(raw.get("evidence_spans", []), len(item.text)),
        decided_at=_datetime(raw, "decided_at"),
    )
    return row


def check_item_fields(raw: dict[str, Any]) -> ItemRow:
    """Validate the content-item part of a row (shared by ingest and dataset import)."""
    _check_storable_text(raw)
    modality = raw.get("modality", Modality.TEXT)
    if not isinstance(modality, str) or modality not in MODALITIES:  # a list is not even hashable
        raise RowError("modality", f"modality must be one of {', '.join(sorted(MODALITIES))}")
    return ItemRow(
        source=_string(raw, "source", required=True, max_len=100),
        external_id=_string(raw, "external_id", required=True, max_len=255),
        modality=modality,
        title=_string(raw, "title", max_len=MAX_TEXT_CHARS),
        text=_string(raw, "text", max_len=MAX_TEXT_CHARS),
        media_urls=_media_urls(raw.get("media_urls", [])),
        context=_context(raw.get("context", [])),
        metadata=_metadata(raw.get("metadata", {})),
        reach=_reach(raw.get("reach", 0)),
        embedding=_embedding(raw.get("embedding")),
        author_key=_string(raw, "author", max_len=MAX_AUTHOR_CHARS),
    )


def _check_storable_text(raw: dict[str, Any]) -> None:
    """Reject, naming the field, any value PostgreSQL cannot store or Python cannot carry through:
    NUL characters and lone surrogates in strings and keys (text and jsonb refuse both), numbers
    beyond float range (`1e400` parses as infinity, which jsonb and float8 refuse) and nesting
    deeper than MAX_JSON_DEPTH. Runs before the per-field checks, so they see plain JSON only."""
    for name, value in raw.items():
        problem = _unstorable(value, depth=0)
        if problem:
            raise RowError(name, f"{name} {problem}")


def _unstorable(value: Any, *, depth: int) -> str | None:
    """Why `value` (parsed JSON) cannot be stored, or None. Recursive, bounded by MAX_JSON_DEPTH."""
    if isinstance(value, str):
        return _unstorable_text(value)
    if value is None or isinstance(value, (bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "holds a number beyond the float range (about ±1.8e308)"
    if not isinstance(value, (list, dict)):
        return "holds a value that is not JSON"
    if depth >= MAX_JSON_DEPTH:
        return f"is nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, dict):
        for key in value:
            problem = _unstorable_text(key) if isinstance(key, str) else "has a key that is not a string"
            if problem:
                return problem.replace("contains", "has a key that contains", 1)
    for item in value.values() if isinstance(value, dict) else value:
        problem = _unstorable(item, depth=depth + 1)
        if problem:
            return problem
    return None


def storable_name(name: str) -> str:
    """A field name as errors can quote it: errors are stored in jsonb too, so a name with a NUL or a
    lone surrogate is quoted with backslash escapes."""
    return name if _unstorable_text(name) is None else name.encode("unicode_escape").decode("ascii")


def _unstorable_text(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired UTF-16 surrogate"
    return None


def _string(raw: dict[str, Any], name: str, *, required: bool = False, max_len: int) -> str:
    value = raw.get(name)
    if value is None:
        if required:
            raise RowError(name, f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise RowError(name, f"{name} must be a string")
    if required and not value.strip():
        raise RowError(name, f"{name} must not be blank")
    if len(value) > max_len:
        raise RowError(name, f"{name} is longer than {max_len} characters")
    return value


def _score(value: Any) -> float:
    if value is None:
        raise RowError("score", "score is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RowError("score", "score must be a number")
    # A comparison, not math.isfinite: a huge integer (10**400) cannot be converted to float.
    if not 0 <= value <= 1:
        raise RowError("score", "score must be between 0 and 1")
    return float(value)


def _media_urls(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_MEDIA_URLS:
        raise RowError("media_urls", f"media_urls must be a list of at most {MAX_MEDIA_URLS} URLs")
    for url in value:
        if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
            raise RowError("media_urls", "each media URL must be a string of at most 2048 characters")
        if is_own_static(url):  # a file of this app's static host, e.g. the demo's media
            continue
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
        except ValueError:  # "http://[bad/x": an unclosed IPv6 bracket, a bad port
            raise RowError("media_urls", f"media_urls holds a URL that cannot be parsed: {url[:100]!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RowError(
                "media_urls",
                f"media URL must be http(s) with a host, or a path under {settings.STATIC_URL}: {url[:100]!r}",
            )
    return value


def _context(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list) or len(value) > MAX_CONTEXT_TURNS:
        raise RowError("context", f"context must be a list of at most {MAX_CONTEXT_TURNS} turns")
    for turn in value:
        if not isinstance(turn, dict) or not isinstance(turn.get("text"), str):
            raise RowError("context", "each context turn must be an object with a 'text' string")
        if set(turn) - {"author", "text"} or not isinstance(turn.get("author", ""), str):
            raise RowError("context", "context turns take only 'author' and 'text' strings")
        if len(turn["text"]) > MAX_TEXT_CHARS:
            raise RowError("context", f"a context turn is longer than {MAX_TEXT_CHARS} characters")
    return value


def _metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RowError("metadata", "metadata must be an object")
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise RowError("metadata", f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return value


def _reach(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**62:
        raise RowError("reach", "reach must be a non-negative integer")
    return value


def _embedding(value: Any) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= MAX_EMBEDDING_DIM:
        raise RowError("embedding", f"embedding must be a list of 1 to {MAX_EMBEDDING_DIM} numbers")
    numbers = []
    for number in value:
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise RowError("embedding", "embedding values must be finite numbers")
        try:
            numbers.append(float(number))  # an integer beyond float range overflows here
        except OverflowError:
            raise RowError("embedding", "embedding values must be finite numbers") from None
        if not math.isfinite(numbers[-1]):
            raise RowError("embedding", "embedding values must be finite numbers")
    return numbers


def _spans(value: Any, text_len: int) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_SPANS:
        raise RowError("evidence_spans", f"evidence_spans must be a list of at most {MAX_SPANS} spans")
    for span in value:
        if not isinstance(span, dict) or set(span) - {"start", "end", "label"}:
            raise RowError("evidence_spans", "each span is an object with start, end and optional label")
        start, end = span.get("start"), span.get("end")
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (start, end)):
            raise RowError("evidence_spans", "span start and end must be integers")
        if not 0 <= start < end <= text_len:
            raise RowError("evidence_spans", f"span {start}-{end} is outside the text (length {text_len})")
        if not isinstance(span.get("label", ""), str) or len(span.get("label", "")) > 100:
            raise RowError("evidence_spans", "span label must be a string of at most 100 characters")
    return value


def _datetime(raw: dict[str, Any], name: str) -> datetime | None:
    """An aware datetime, in UTC: PostgreSQL refuses UTC offsets beyond ±15:59 that ISO 8601 and
    Python allow (-23:59), and a time that leaves Python's years 1–9999 in UTC cannot be read back."""
    value = raw.get(name)
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise RowError(name, f"{name} must be an ISO 8601 date-time with a time zone")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise RowError(name, f"{name} is outside the years 1 to 9999 in UTC") from None
