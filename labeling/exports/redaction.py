"""PII redaction for exports: URLs, emails, phone numbers and @handles become placeholders.

Pattern-based, so it removes the common forms of contact details and account names, not every
piece of personal data (names, addresses and obfuscated forms such as "john at example dot com"
stay). Order matters: URLs first (they may contain '@' and digits), then emails (before handles),
then phone numbers, then handles.
"""

from __future__ import annotations

import re
from typing import Any

URL, EMAIL, PHONE, HANDLE = "[URL]", "[EMAIL]", "[PHONE]", "[HANDLE]"

_TRAILING_PUNCTUATION = ".,;:!?'\")]}>"
_URL = re.compile(r"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>\"]+")
# Without a scheme: a domain followed by a path, or a bare domain under a common top-level domain.
_BARE_DOMAIN_URL = re.compile(
    r"(?i)(?<![\w@.-])(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:[a-z]{2,24}/[^\s<>\"]*|(?:com|net|org|info|biz|io|co|me|app|dev|ly|tv|gg|xyz|uk|de|fr|ru|br|in|jp)\b(?!@))"
)
_EMAIL = re.compile(r"(?i)(?<![\w.%+-])[a-z0-9._%+-]+@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}\b")
# A run of digits with the separators phone numbers use; judged by `_looks_like_phone`.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])(?:\+|\b00)?\(?\d(?:[\d \-.()/]|\u00a0){5,22}\d(?![\w])")
_HANDLE = re.compile(r"(?<![\w@.])@\w(?:[\w.]*\w)?")

_DATE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
_DOTTED_QUAD = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_GROUPED_NUMBER = re.compile(r"^\d{1,3}(?:[.,]\d{3})+$")
_DOUBLE_SEPARATOR = re.compile(r"[\-./]{2}|[ \u00a0]{2}")


def _strip_trailing(match: re.Match[str], placeholder: str) -> str:
    text = match.group(0)
    kept = text.rstrip(_TRAILING_PUNCTUATION)
    if text.endswith(")") and kept.count("(") > kept.count(")"):
        kept += ")"  # a URL such as https://en.wikipedia.org/wiki/Foo_(bar)
    return placeholder + text[len(kept) :]


def _looks_like_phone(candidate: str) -> bool:
    digits = sum(ch.isdigit() for ch in candidate)
    international = candidate.startswith(("+", "00"))
    separated = any(not ch.isdigit() for ch in candidate.lstrip("+"))
    if not 7 <= digits <= 15 or _DOUBLE_SEPARATOR.search(candidate):
        return False
    if _DATE.match(candidate) or _DOTTED_QUAD.match(candidate) or _GROUPED_NUMBER.match(candidate):
        return False
    if candidate.count("(") != candidate.count(")"):
        return False
    # An unbroken run of digits is a phone number only when long enough to be one with its area code.
    return international or separated or digits >= 10


def _phone(match: re.Match[str]) -> str:
    return PHONE if _looks_like_phone(match.group(0)) else match.group(0)


def redact_text(text: str) -> str:
    """`text` with URLs, emails, phone numbers and @handles replaced by placeholders."""
    if not text:
        return text
    text = _URL.sub(lambda m: _strip_trailing(m, URL), text)
    text = _EMAIL.sub(EMAIL, text)
    text = _BARE_DOMAIN_URL.sub(lambda m: _strip_trailing(m, URL), text)
    text = _PHONE_CANDIDATE.sub(_phone, text)
    return _HANDLE.sub(HANDLE, text)


def redact_context(turns: Any) -> Any:
    """Conversation turns with every string field redacted (text and author alike)."""
    if not isinstance(turns, list):
        return turns
    return [
        {key: redact_text(value) if isinstance(value, str) else value for key, value in turn.items()}
        if isinstance(turn, dict)
        else turn
        for turn in turns
    ]
