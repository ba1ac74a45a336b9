"""Template filters for policy labels: people read display names, not schema keys."""

from __future__ import annotations

from collections.abc import Iterable

from django import template

from ..models import PolicyVersion, readable_key

register = template.Library()


@register.filter(name="label_names")
def label_names(values: Iterable[str] | None, version: PolicyVersion | None) -> str:
    """`["very_strong"]|label_names:version` → "Very strong" (comma-separated; autoescaped as text)."""
    if not values:
        return ""
    if version is None:
        return ", ".join(values)
    return ", ".join(version.label_title(value) for value in values)


@register.filter(name="severity_name")
def severity_name(level: str | None) -> str:
    """`"very_strong"|severity_name` → "Very strong": severity levels have no titles in the schema."""
    return readable_key(level) if level else ""
