"""Template filters for policy labels: people read display names, not schema keys."""

from __future__ import annotations

from collections.abc import Iterable

from django import template

from ..models import PolicyVersion

register = template.Library()


@register.filter(name="label_names")
def label_names(values: Iterable[str] | None, version: PolicyVersion | None) -> str:
    """`["very_strong"]|label_names:version` → "Very strong" (comma-separated; autoescaped as text)."""
    if not values:
        return ""
    if version is None:
        return ", ".join(values)
    return ", ".join(version.label_title(value) for value in values)


@register.filter(name="label_name")
def label_name(value: str, version: PolicyVersion | None) -> str:
    """`"very_strong"|label_name:version` → "Very strong": one label value's display name."""
    return version.label_title(value) if version is not None else value
