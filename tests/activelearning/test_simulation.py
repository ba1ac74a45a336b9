"""The simulation loop and dataset adapters behind bench/al_simulation.py."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from activelearning.heads import HeadConfig
from activelearning.simulation import (
    SimulationError,
    SimulationSetup,
    convabuse_gold,
    geometric_checkpoints,
    labels_to_reach,
    load_dataset,
    mean_curve,
    run_curves,
    simulate,
    subsample,
)
from labeling.datasets import AnnotatorLabel, DatasetRecord


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_any_csv_with_named_text_and_label_columns_loads_as_binary(tmp_path: Path) -> None:
    rows = [{"body": f"comment {i}", "verdict": "spam" if i % 4 == 0 else "ham"} for i in range(200)]
    path = write_csv(tmp_path / "mail.csv", rows)
    dataset = load_dataset(path, "csv", text_col="body", label_col="verdict")
    assert dataset.task == "binary" and dataset.classes == ["ham", "spam"]  # the rarer value is the harm
    assert int(dataset.y.sum()) == 50 and 20 < dataset.test.sum() < 60
    again = load_dataset(path, "csv", text_col="body", label_col="verdict")
    assert np.array_equal(dataset.test, again.test)  # hash split: the same items every run


def test_jsonl_with_three_labels_is_multiclass_and_blank_labels_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "posts.jsonl"
    labels = ["hate", "offensive", "neither", ""]
    path.write_text("\n".join(json.dumps({"text": f"t{i}", "label": labels[i % 4]}) for i in range(40)))
    dataset = load_dataset(path, "jsonl")
    assert dataset.task == "multiclass" and dataset.classes == ["hate", "neither", "offensive"]
    assert len(dataset.y) == 30 and "10 items without a gold label dropped" in dataset.notes


def test_binary_positive_label_is_recognised_by_name_or_given(tmp_path: Path) -> None:
    rows = [{"text": f"x{i}", "label": "1" if i % 3 else "0"} for i in range(30)]  # "1" is the majority
    path = write_csv(tmp_path / "d.csv", rows)
    assert load_dataset(path, "csv").classes == ["0", "1"]
    assert load_dataset(path, "csv", positive="0").classes == ["1", "0"]
    with pytest.raises(SimulationError, match="two label values"):
        load_dataset(write_csv(tmp_path / "one.csv", [{"text": "a", "label": "x"}]), "csv")


def record(*labels: str) -> DatasetRecord:
    votes = [AnnotatorLabel(annotator=f"A{i}", label=label) for i, label in enumerate(labels)]
    return DatasetRecord("convabuse", "c1", "hi", [], {}, votes, None)


def test_convabuse_gold_is_the_majority_of_abusive_vs_not() -> None:
    assert convabuse_gold(record("abusive", "ambiguous", "not_abusive")) == "not_abusive"
    assert convabuse_gold(record("abusive", "abusive", "ambiguous")) == "abusive"
    assert convabuse_gold(record("abusive", "not_abusive")) is None  # a tie has no gold


def test_subsample_is_stable_and_keeps_the_split_apart(tmp_path: Path) -> None:
    rows = [{"text": f"c{i}", "label": "a" if i % 2 else "b"} for i in range(300)]
    dataset = load_dataset(write_csv(tmp_path / "d.csv", rows), "csv")
    small = subsample(dataset, max_pool=50, max_test=10)
    assert (~small.test).sum() == 50 and small.test.sum() == 10
    assert small.ids == subsample(dataset, max_pool=50, max_test=10).ids
    assert set(small.ids) <= set(dataset.ids) and any("subsampled" in note for note in small.notes)


def test_geometric_checkpoints_grow_by_the_factor_and_end_at_the_stop() -> None:
    assert geometric_checkpoints(20, 100) == [20, 25, 31, 39, 49, 61, 76, 95, 100]
    assert geometric_checkpoints(2, 5, factor=1.1) == [2, 3, 4, 5]


def test_labels_to_reach_interpolates_the_first_crossing() -> None:
    curve = [(20, 0.5), (40, 0.7), (80, 0.9), (160, 0.8)]
    assert labels_to_reach(curve, 0.8) == pytest.approx(60.0)
    assert labels_to_reach(curve, 0.4) == 20.0
    assert labels_to_reach(curve, 0.95) is None


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    gen = np.random.default_rng(seed)
    y = (gen.random(n) < 0.2).astype(np.int64)  # a rare positive class
    x = gen.normal(size=(n, 8)) + y[:, None] * 1.5
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def setup() -> SimulationSetup:
    x_pool, y_pool = blobs(400, 0)
    x_test, y_test = blobs(200, 1)
    head = HeadConfig(hidden=0, lr=1e-2, max_epochs=15)
    return SimulationSetup(
        x_pool, y_pool, x_test, y_test, task="binary", classes=["clear", "harm"], head=head, mc_samples=4, minority=1
    )


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["random", "margin", "bald", "coreset", "badge"])
def test_simulate_labels_exactly_the_checkpoints_and_learns(setup: SimulationSetup, strategy: str) -> None:
    points = list(simulate(setup, strategy, seed=0, checkpoints=[10, 20, 40, 80]))
    assert [p.labels for p in points] == [10, 20, 40, 80]
    assert points[-1].macro_f1 > 0.75 and 0 <= points[-1].minority_labelled <= 80
    assert points[0].macro_f1 == next(simulate(setup, "random", seed=0, checkpoints=[10])).macro_f1  # same seed set


def test_simulation_is_deterministic_for_a_seed(setup: SimulationSetup) -> None:
    first = [(p.labels, p.macro_f1) for p in simulate(setup, "entropy", seed=3, checkpoints=[10, 30])]
    again = [(p.labels, p.macro_f1) for p in simulate(setup, "entropy", seed=3, checkpoints=[10, 30])]
    assert first == again


@pytest.mark.slow
def test_run_curves_stops_soon_after_the_mean_reaches_the_target(setup: SimulationSetup) -> None:
    checkpoints = [10, 20, 40, 80, 160, 320]
    points = run_curves(setup, "random", seeds=[0, 1], checkpoints=checkpoints, target=0.0, rounds_after_target=1)
    assert [labels for labels, _ in mean_curve(points)] == [10, 20]
    everything = run_curves(replace(setup, mc_samples=2), "random", seeds=[0], checkpoints=[10, 400, 500])
    assert [p.labels for p in everything] == [10, 400]  # the pool ran out
