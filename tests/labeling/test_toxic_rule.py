"""The two rules that turn a Toxic Spans worker's row into a label, on the shipped data and through the command.

"highlighted" (the default) counts a worker as toxic when they highlighted a span (or ticked
"all toxic" without "not toxic"); "dataset" is the authors' convention, toxic unless they ticked
"not toxic". `read_toxic_spans` documents why the default is what it is and the counts pinned here.
"""

from __future__ import annotations

from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from labeling.datasets import DatasetError, majority_label, read_toxic_spans
from labeling.models import Annotation
from reviewapp.models import ContentItem


@pytest.mark.slow
def test_the_rules_differ_on_1905_of_58858_labels_as_documented(toxic_spans_dir: Path) -> None:
    by_rule = {
        rule: {
            (record.external_id, answer.extra["annotation_id"]): answer
            for record in read_toxic_spans(toxic_spans_dir, toxic_rule=rule)
            for answer in record.annotations
        }
        for rule in ("highlighted", "dataset")
    }
    highlighted, dataset = by_rule["highlighted"], by_rule["dataset"]
    assert highlighted.keys() == dataset.keys() and len(highlighted) == 58_858
    differ = Counter(
        (highlighted[key].label, bool(highlighted[key].spans), dataset[key].extra["not_toxic"])
        for key in highlighted
        if highlighted[key].label != dataset[key].label
    )
    assert sum(differ.values()) == 1_905
    # toxic only by "highlighted": ticked "not toxic" yet highlighted (16 with every span outside the text)
    assert differ["toxic", True, True] + differ["toxic", False, True] == 997 and differ["toxic", False, True] == 16
    # toxic only by "dataset": ticked nothing, highlighted nothing
    assert differ["not_toxic", False, False] == 908
    assert all(answer.label == ("not_toxic" if answer.extra["not_toxic"] else "toxic") for answer in dataset.values())


def test_the_rule_is_recorded_and_a_wrong_rule_is_refused(toxic_spans_dir: Path) -> None:
    records = list(read_toxic_spans(toxic_spans_dir, limit=50, toxic_rule="dataset"))
    assert {record.metadata["toxic_rule"] for record in records} == {"dataset"}
    assert all(record.label == majority_label(record.annotations) for record in records)
    with pytest.raises(DatasetError, match="toxic_rule must be one of highlighted, dataset"):
        next(read_toxic_spans(toxic_spans_dir, toxic_rule="spans"))  # type: ignore[arg-type]


@pytest.mark.django_db
def test_import_dataset_applies_the_chosen_rule_to_the_reference_label(toxic_spans_dir: Path) -> None:
    limit = 300
    expected = {r.external_id: r.label for r in read_toxic_spans(toxic_spans_dir, limit, toxic_rule="dataset")}
    default = {r.external_id: r.label for r in read_toxic_spans(toxic_spans_dir, limit)}
    assert expected != default  # the prefix holds items the two rules label differently

    call_command(
        "import_dataset", "toxic-spans", str(toxic_spans_dir), "--limit", str(limit),
        "--toxic-spans-rule", "dataset", stdout=StringIO(),
    )  # fmt: skip

    items = ContentItem.objects.filter(source="toxic-spans")
    stored = {item.external_id: item.metadata.get("source_label") for item in items}
    assert stored == expected
    assert {item.metadata["toxic_rule"] for item in items} == {"dataset"}


@pytest.mark.slow
@pytest.mark.django_db
def test_crowd_import_applies_the_chosen_rule_to_each_workers_annotation(toxic_spans_dir: Path) -> None:
    limit = 60
    expected = Counter(
        answer.label
        for record in read_toxic_spans(toxic_spans_dir, limit, toxic_rule="dataset")
        for answer in record.annotations
        if not answer.extra.get("repeat")
    )
    default = Counter(
        answer.label
        for record in read_toxic_spans(toxic_spans_dir, limit)
        for answer in record.annotations
        if not answer.extra.get("repeat")
    )
    assert expected != default  # the prefix holds answers the two rules label differently

    call_command(
        "import_dataset", "toxic-spans", str(toxic_spans_dir), "--limit", str(limit),
        "--toxic-spans-rule", "dataset", "--as-annotations", stdout=StringIO(),
    )  # fmt: skip

    stored = Counter(label for labels in Annotation.objects.values_list("labels", flat=True) for label in labels)
    assert stored == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["convabuse", "--toxic-spans-rule", "dataset"], "applies to the toxic-spans format only"),
    ],
)
def test_import_dataset_refuses_the_rule_where_it_does_not_apply(
    toxic_spans_dir: Path, args: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("import_dataset", args[0], str(toxic_spans_dir), *args[1:], stdout=StringIO())
