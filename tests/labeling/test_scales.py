"""Label schemas declare the scale of each answer field; bad declarations are refused with a clear message."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from labeling.models import check_label_schema
from labeling.scales import answer_category, schema_scales
from labeling.stats.agreement import Scale
from reviewapp.services.imports import ABUSE_SCHEMA, TOXICITY_SCHEMA

LABELS = [{"value": "abusive"}, {"value": "ambiguous"}, {"value": "not_abusive"}]


def schema(**extra: Any) -> dict[str, Any]:
    return {"labels": LABELS, "severity_levels": ["mild", "strong", "very_strong"], **extra}


def test_without_a_declaration_the_label_is_nominal_and_severity_ordinal_in_listed_order() -> None:
    scales = schema_scales(schema())
    assert scales["label"].scale == Scale() and not scales["label"].declared
    assert scales["severity"].scale == Scale.ordinal(["mild", "strong", "very_strong"])
    assert "severity" not in schema_scales({"labels": LABELS})
    assert schema_scales(TOXICITY_SCHEMA)["severity"].scale.level == "ordinal"


def test_convabuse_schema_declares_its_five_point_severity_scale() -> None:
    check_label_schema(ABUSE_SCHEMA)
    severity = schema_scales(ABUSE_SCHEMA)["severity"]
    assert severity.declared
    assert severity.scale.order == ("not_abusive", "ambiguous", "mild", "strong", "very_strong")
    # An answer without a severity takes its label's place; with one, the severity.
    assert answer_category("severity", severity.scale, ["not_abusive"], "") == "not_abusive"
    assert answer_category("severity", severity.scale, ["abusive"], "strong") == "strong"
    assert answer_category("severity", Scale.ordinal(["mild", "strong"]), ["not_abusive"], "") is None
    assert answer_category("label", Scale(), ["a", "b"], "") is None  # multi-label answers have no place


@pytest.mark.parametrize(
    ("scales", "expected"),
    [
        ({"label": "ordinal"}, Scale.ordinal(["abusive", "ambiguous", "not_abusive"])),
        ({"label": {"level": "ordinal", "order": ["not_abusive", "ambiguous", "abusive"]}}, None),
        ({"severity": {"level": "interval", "values": {"mild": 1, "strong": 2, "very_strong": 4}}}, None),
        (
            {"severity": {"level": "interval", "values": {"not_abusive": 0, "mild": 1, "strong": 2, "very_strong": 3}}},
            None,
        ),
        ({"severity": "nominal"}, Scale()),
    ],
)
def test_valid_declarations_are_accepted(scales: dict[str, Any], expected: Scale | None) -> None:
    check_label_schema(schema(scales=scales))
    if expected is not None:
        (field,) = scales
        assert schema_scales(schema(scales=scales))[field].scale == expected


@pytest.mark.parametrize(
    ("scales", "message"),
    [
        ("ordinal", "'scales' must be an object"),
        ({"target": "nominal"}, "unknown fields target"),
        ({"label": "ratio"}, "'scales.label'.level must be one of nominal, ordinal, interval"),
        ({"label": 3}, "must be a level name or an object"),
        ({"label": {"level": "ordinal", "order": ["abusive", "not_abusive"]}}, "leaves out ambiguous"),
        ({"label": {"level": "ordinal", "order": ["abusive", "ambiguous", "not_abusive", "spam"]}}, "names spam"),
        ({"label": {"level": "ordinal", "order": "abusive"}}, "order must be a list of strings"),
        ({"label": {"level": "ordinal", "order": ["abusive", "ambiguous", "not_abusive", "abusive"]}}, "twice"),
        ({"severity": "interval"}, "an interval scale needs 'values'"),
        ({"severity": {"level": "interval", "values": {"mild": 1, "strong": "2", "very_strong": 3}}}, "numbers"),
        ({"severity": {"level": "interval", "values": {"mild": 1, "strong": 2}}}, "leaves out very_strong"),
        ({"severity": {"level": "ordinal", "values": {"mild": 1}}}, "takes an 'order', not 'values'"),
        ({"severity": {"level": "nominal", "order": ["mild"]}}, "takes no 'order' or 'values'"),
        ({"severity": {"level": "ordinal", "direction": "up"}}, "unknown keys direction"),
    ],
)
def test_bad_declarations_are_refused_naming_the_field_and_problem(scales: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_label_schema(schema(scales=scales))


def test_a_scale_must_fit_the_rest_of_the_schema() -> None:
    with pytest.raises(ValidationError, match=r"'scales\.severity' needs 'severity_levels'"):
        check_label_schema({"labels": LABELS, "scales": {"severity": "ordinal"}})
    with pytest.raises(ValidationError, match="must be nominal when 'allow_multiple' is true"):
        check_label_schema({"labels": LABELS, "allow_multiple": True, "scales": {"label": "ordinal"}})
