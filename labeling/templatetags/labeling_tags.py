"""Template filters for policy labels: people read display names, not schema keys."""

from __future__ import annotations

from collections.abc import Iterable

from django import template

from reviewapp.models import RoutingOutcome, TaskReason

from ..models import GoldSource, Policy, PolicyVersion, readable_key
from ..stats.agreement import Scale

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


def _version_of(owner: Policy | PolicyVersion | None) -> PolicyVersion | None:
    """A policy's version in force, read once per policy object a page renders."""
    if owner is None or isinstance(owner, PolicyVersion):
        return owner
    if "_version_for_names" not in owner.__dict__:
        owner.__dict__["_version_for_names"] = owner.current_version()
    return owner.__dict__["_version_for_names"]


@register.filter(name="label_name")
def label_name(value: str | None, owner: Policy | PolicyVersion | None) -> str:
    """`"not_abusive"|label_name:policy` → "Not abusive": one label value by its display name under
    the policy's version in force (or the version given); a value it does not know reads as itself."""
    if not value:
        return ""
    version = _version_of(owner)
    return version.label_title(value) if version is not None else readable_key(value)


@register.filter(name="key_name")
def key_name(key: str | None) -> str:
    """`"least_confidence"|key_name` → "Least confidence": a schema or code key with no title of its own."""
    return readable_key(str(key)) if key else ""


@register.filter(name="route_name")
def route_name(reason: str | None) -> str:
    """`"low_confidence"|route_name` → "Low confidence": why an item reached people, as they say it."""
    if not reason:
        return ""
    titles = {value: title for value, title in TaskReason.choices if title != value.replace("_", " ").title()}
    return titles.get(reason) or readable_key(reason)


@register.filter(name="slice_value")
def slice_value(value: str | None, field: str) -> str:
    """A held-out slice's value: a route by its name; data values (languages, sources) as they are."""
    return route_name(value) if field == "route" else str(value)


@register.filter(name="outcome_name")
def outcome_name(outcome: str | None) -> str:
    """`"auto_action"|outcome_name` → "Auto-enforced": what automation did, as people say it."""
    if not outcome:
        return ""
    return dict(RoutingOutcome.choices).get(outcome) or readable_key(outcome)


@register.filter(name="gold_source_name")
def gold_source_name(source: str | None) -> str:
    """`"adjudication"|gold_source_name` → "Lead adjudication"."""
    if not source:
        return ""
    return dict(GoldSource.choices).get(source) or readable_key(source)


@register.filter(name="scale_text")
def scale_text(scale: Scale, owner: Policy | PolicyVersion | None) -> str:
    """A field's agreement scale with its categories by display name: "ordinal: Not abusive < Mild"."""
    version = _version_of(owner)
    labels = set(version.label_values) if version is not None else set()
    return scale.describe(lambda c: version.label_title(c) if version is not None and c in labels else readable_key(c))


@register.filter(name="policy_names")
def policy_names(keys: Iterable[str] | None) -> str:
    """`["hate", "spam"]|policy_names` → "Hate, Spam": policies by name (a key no policy has, as itself)."""
    keys = list(keys or [])
    names = dict(Policy.objects.filter(key__in=keys).values_list("key", "name"))
    return ", ".join(names.get(key, key) for key in keys)
