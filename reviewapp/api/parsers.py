"""A JSON parser that refuses oversized bodies before reading them, with clear messages."""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .errors import PayloadTooLarge


class BoundedJSONParser(JSONParser):
    """The parser of every JSON endpoint (DEFAULT_PARSER_CLASSES).

    DRF's JSONParser reads the stream without Django's size check; this one enforces
    INGEST_MAX_BODY_BYTES by Content-Length and by counting what it reads. Malformed JSON,
    NaN/Infinity, numbers beyond float range (1e400) and nesting too deep for Python's json
    module are a 400 naming the problem, never a 500.
    """

    # Ingest reports a number beyond float range per row (RowsJSONParser), so valid rows are kept.
    finite_numbers_only = True

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        limit = settings.INGEST_MAX_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Request body is {declared} bytes; the limit is {limit} bytes.")
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes.")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ParseError(f"Request body is not valid UTF-8 (byte {error.start}).") from None
        try:
            return strict_json_loads(text, finite_numbers_only=self.finite_numbers_only)
        except json.JSONDecodeError as error:
            raise ParseError(f"Malformed JSON: {error.msg} at line {error.lineno} column {error.colno}.") from None
        except RecursionError:
            raise ParseError("Malformed JSON: nested too deeply.") from None
        except ValueError as error:
            raise ParseError(f"Malformed JSON: {error}.") from None


class RowsJSONParser(BoundedJSONParser):
    """For batches of rows validated one by one: a number beyond float range parses as infinity,
    and row validation reports it on its row instead of refusing the whole body."""

    finite_numbers_only = False


def strict_json_loads(text: str, *, finite_numbers_only: bool = False) -> Any:
    """Strict JSON: NaN and Infinity, which Python accepts and PostgreSQL's jsonb refuses, are errors;
    so is a number beyond float range (`1e400`, which Python reads as infinity) if `finite_numbers_only`."""
    parse_float = _finite_float if finite_numbers_only else float
    return json.loads(text, parse_constant=_refuse_constant, parse_float=parse_float)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is beyond the float range (about ±1.8e308)")
    return value
