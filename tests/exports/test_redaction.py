"""PII redaction on tricky inputs: what must go, and what must stay."""

from __future__ import annotations

import pytest

from labeling.exports.redaction import redact_context, redact_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe+tag@mail.example.co.uk.", "mail [EMAIL]."),
        ("<jo@example.com>", "<[EMAIL]>"),
        ("see https://example.com/a?b=1, then", "see [URL], then"),
        ("(https://en.wikipedia.org/wiki/Foo_(bar))", "([URL])"),
        ("www.foo.org/x).", "[URL])."),
        ("t.co/abc123 and bit.ly and example.com.", "[URL] and [URL] and [URL]."),
        ("https://mastodon.social/@user", "[URL]"),
        ("call +44 20 7946 0958 now", "call [PHONE] now"),
        ("(555) 123-4567 or 555.123.4567", "[PHONE] or [PHONE]"),
        ("+1-202-555-0173", "[PHONE]"),
        ("0049 30 1234567", "[PHONE]"),
        ("+33 6 12 34 56 78", "[PHONE]"),
        ("mobile 07700900123", "mobile [PHONE]"),
        ("tel:+1-202-555-0173", "tel:[PHONE]"),
        ("hey @alice_b and @bob.smith.", "hey [HANDLE] and [HANDLE]."),
        ("@jo's", "[HANDLE]'s"),
        ("ping @müller", "ping [HANDLE]"),
    ],
)
def test_redacts(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "on 2026-11-26 at 10:30",
        "26/11/2026",
        "1,234,567 views",
        "ip 192.168.1.1",
        "order 1234567",
        "year 2026 and 3.14159",
        "v1.2.3 and node.js and file.txt",
        "e.g. this, i.e. that",
        "a@b is not an email, @ 5pm is not a handle",
        "",
    ],
)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


def test_context_turns_are_redacted_field_by_field() -> None:
    turns = [{"author": "@jo", "text": "jo@example.com", "ts": 3}, "not a turn"]
    assert redact_context(turns) == [{"author": "[HANDLE]", "text": "[EMAIL]", "ts": 3}, "not a turn"]
    assert redact_context(None) is None
