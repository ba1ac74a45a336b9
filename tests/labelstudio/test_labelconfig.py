"""The labeling config and Label Studio JSON made from a policy version's schema (no server)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from labeling.labelstudio.labelconfig import (
    ExportRow,
    ResultUnreadable,
    answer_from_result,
    choice_results,
    label_config_for,
    ls_json_tasks,
)
from tests.factories import PolicyFactory, PolicyVersionFactory

SCHEMA = {
    "labels": [
        {"value": "hate", "title": 'Hate "speech" <b>', "description": "Attacks on a protected group."},
        {"value": "ok", "title": "OK"},
    ],
    "allow_multiple": True,
    "severity_levels": ["low", "high"],
}


@pytest.fixture
def version(db):  # type: ignore[no-untyped-def]
    return PolicyVersionFactory(
        policy=PolicyFactory(key="hate", name="Hate & abuse", version=None), label_schema=SCHEMA
    )


def test_config_has_the_schemas_labels_severity_and_rationale(version) -> None:
    root = ElementTree.fromstring(label_config_for(version))  # noqa: S314 (our own XML)
    label = root.find("Choices[@name='label']")
    assert label is not None and label.get("choice") == "multiple"
    assert [(c.get("alias"), c.get("value"), c.get("hint")) for c in label] == [
        ("hate", 'Hate "speech" <b>', "Attacks on a protected group."),
        ("ok", "OK", None),
    ]
    assert [c.get("value") for c in root.find("Choices[@name='severity']")] == ["low", "high"]
    assert root.find("TextArea[@name='rationale']") is not None
    assert root.find("Header").get("value") == "Hate & abuse (policy v1)"


def test_single_label_schemas_use_radio_buttons_and_no_severity_when_none(db) -> None:
    schema = {"labels": [{"value": "a"}, {"value": "b"}]}
    version = PolicyVersionFactory(policy=PolicyFactory(version=None), label_schema=schema)
    root = ElementTree.fromstring(label_config_for(version))  # noqa: S314 (our own XML)
    assert root.find("Choices[@name='label']").get("choice") == "single-radio"
    assert root.find("Choices[@name='severity']") is None


def test_answer_is_read_back_from_a_result() -> None:
    answer = answer_from_result(choice_results(["hate", "ok"], "high", "slur in line 2"))
    assert (answer.labels, answer.severity, answer.rationale) == (["hate", "ok"], "high", "slur in line 2")


@pytest.mark.parametrize(
    ("result", "message"),
    [
        ([], "no label"),
        ("nope", "not a list"),
        ([{"from_name": "sentiment", "value": {"choices": ["x"]}}], "unknown control 'sentiment'"),
    ],
)
def test_unreadable_results_say_why(result, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ResultUnreadable, match=message):
        answer_from_result(result)


def test_export_rows_become_tasks_with_ground_truth_annotations(version) -> None:
    rows = [ExportRow(text="t", labels=["hate"], policy_version=version, context=[{"author": "a", "text": "hi"}])]
    [task] = ls_json_tasks(rows)
    assert task["data"] == {"text": "t", "context": "a: hi", "external_id": ""}
    assert task["annotations"] == [{"result": choice_results(["hate"]), "ground_truth": True}]
    assert task["meta"] == {"policy": "hate", "policy_version": 1}
