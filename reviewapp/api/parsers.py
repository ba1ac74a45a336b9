"""A JSON parser that refuses oversized bodies before reading them, with clear messages."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .errors import PayloadTooLarge


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser reads the stream without Django's size check; this one enforces
    INGEST_MAX_BODY_BYTES by Content-Length and by counting what it reads (chunked bodies)."""

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
            return strict_json_loads(text)
        except json.JSONDecodeError as error:
            raise ParseError(f"Malformed JSON: {error.msg} at line {error.lineno} column {error.colno}.") from None
        except RecursionError:
            raise ParseError("Malformed JSON: nested too deeply.") from None
        except ValueError as error:
            raise ParseError(f"Malformed JSON: {error}.") from None


def strict_json_loads(text: str) -> Any:
    """Strict JSON: NaN and Infinity, which Python accepts and PostgreSQL's jsonb refuses, are errors."""
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
