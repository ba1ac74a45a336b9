"""The measurement scale a label schema declares for each answer field, for agreement statistics.

Plain Python (no Django): `check_label_schema` turns a `ScaleError` into a ValidationError, and the
quality report reads the scales to choose the Krippendorff metric of each field.

A schema may declare, under "scales", the scale of the label and of each ordered field (today:
"severity"):

    "scales": {
        "label": "nominal",
        "severity": {"level": "ordinal", "order": ["not_abusive", "ambiguous", "mild", "strong", "very_strong"]}
    }

Each field's scale is one of
- "nominal" (or {"level": "nominal"}): categories are only the same or different;
- "ordinal": ordered as the schema lists them (labels in `labels` order, severity in
  `severity_levels` order, lowest first), or {"level": "ordinal", "order": [...]} for another order;
- {"level": "interval", "values": {category: number, ...}}: categories on a number line.

The label's order or values list every label exactly once. The severity's list every severity
level and may add label values: an answer without a severity then takes its label's place on the
scale, so "not abusive" can sit below "mild" (ConvAbuse's own 5-point scale); an answer whose
severity is empty and whose label is not on the scale has no severity for agreement.

Without a declaration the label is nominal and the severity ordinal in `severity_levels` order:
severity levels are always listed from least to most severe, so ordinal is the honest default.
A multi-label schema (`allow_multiple`) can only declare a nominal label scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .stats.agreement import LEVELS, AgreementError, Scale

FIELDS = ("label", "severity")


class ScaleError(ValueError):
    """A "scales" declaration that cannot be used; the message names the field and the problem."""


@dataclass(frozen=True)
class FieldScale:
    field: str  # "label" or "severity"
    scale: Scale
    declared: bool  # False: the default for the field (label nominal, severity ordinal)


def schema_scales(schema: Mapping[str, Any]) -> dict[str, FieldScale]:
    """The scale of each field the schema has answers for: always "label", "severity" when it has levels.

    Raises ScaleError for a declaration that is malformed or does not fit the schema's labels
    and severity levels.
    """
    declared = schema.get("scales", {})
    if not isinstance(declared, dict):
        raise ScaleError("'scales' must be an object mapping a field (label, severity) to its scale")
    unknown = sorted(set(declared) - set(FIELDS))
    if unknown:
        raise ScaleError(f"'scales' names unknown fields {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    labels = [label["value"] for label in schema.get("labels", [])]
    levels = list(schema.get("severity_levels", []))
    if "severity" in declared and not levels:
        raise ScaleError("'scales.severity' needs 'severity_levels' to scale")
    scales = {"label": _field_scale("label", declared.get("label"), listed=labels, extra=())}
    if levels:
        scales["severity"] = _field_scale("severity", declared.get("severity"), listed=levels, extra=labels)
    if schema.get("allow_multiple") and scales["label"].scale.level != "nominal":
        raise ScaleError("'scales.label' must be nominal when 'allow_multiple' is true: a set of labels has no order")
    return scales


def _field_scale(field: str, spec: Any, *, listed: Sequence[str], extra: Sequence[str]) -> FieldScale:
    where = f"'scales.{field}'"
    if spec is None:
        default = Scale() if field == "label" else Scale.ordinal(listed)
        return FieldScale(field, default, declared=False)
    if isinstance(spec, str):
        spec = {"level": spec}
    if not isinstance(spec, dict):
        raise ScaleError(f"{where} must be a level name or an object with 'level', got {spec!r}")
    level = spec.get("level")
    if level not in LEVELS:
        raise ScaleError(f"{where}.level must be one of {', '.join(LEVELS)}, got {level!r}")
    unknown = sorted(set(spec) - {"level", "order", "values"})
    if unknown:
        raise ScaleError(f"{where} has unknown keys {', '.join(unknown)}")
    try:
        scale = _scale(where, level, spec, listed, extra)
    except AgreementError as error:
        raise ScaleError(f"{where}: {error}") from None
    return FieldScale(field, scale, declared=True)


def _scale(where: str, level: str, spec: dict[str, Any], listed: Sequence[str], extra: Sequence[str]) -> Scale:
    if level == "nominal":
        if "order" in spec or "values" in spec:
            raise ScaleError(f"{where}: a nominal scale takes no 'order' or 'values'")
        return Scale()
    if level == "ordinal":
        if "values" in spec:
            raise ScaleError(f"{where}: an ordinal scale takes an 'order', not 'values' (use level interval)")
        order = spec.get("order", list(listed))
        if not isinstance(order, list) or not all(isinstance(c, str) for c in order):
            raise ScaleError(f"{where}.order must be a list of strings, lowest first")
        _check_domain(where, order, listed, extra)
        return Scale.ordinal(order)
    values = spec.get("values")
    if not isinstance(values, dict) or "order" in spec:
        raise ScaleError(f"{where}: an interval scale needs 'values', an object mapping each category to a number")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values()):
        raise ScaleError(f"{where}.values must all be numbers")
    _check_domain(where, list(values), listed, extra)
    return Scale.interval(values)


def _check_domain(where: str, given: list[str], listed: Sequence[str], extra: Sequence[str]) -> None:
    missing = [c for c in listed if c not in given]
    if missing:
        raise ScaleError(f"{where} leaves out {', '.join(missing)}: every one of {', '.join(listed)} needs a place")
    foreign = [c for c in given if c not in listed and c not in extra]
    if foreign:
        allowed = ", ".join([*listed, *extra])
        raise ScaleError(f"{where} names {', '.join(foreign)}, which the schema does not have (allowed: {allowed})")


def answer_category(field: str, scale: Scale, labels: Sequence[str], severity: str) -> str | None:
    """The category one answer gives `field` for agreement, or None when it gives none.

    label: the label of a single-label answer. severity: the severity when given, else the label
    when the severity scale places labels (see the module docstring), else None.
    """
    if len(labels) != 1:
        return None
    if field == "label":
        return labels[0]
    if severity:
        return severity
    return labels[0] if labels[0] in scale.order else None
