"""The simulation loop and dataset adapters behind bench/al_simulation.py."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from activelearning.curve_reading import (
    CurvePoint,
    bootstrap_ratio,
    declare_best,
    labels_to_reach,
    labels_to_stay,
    mean_curve,
)
from activelearning.heads import HeadConfig
from activelearning.simulation import (
    SimulationError,
    SimulationSetup,
    choose_head,
    convabuse_gold,
    distinct_strategies,
    geometric_checkpoints,
    grouped_dev_split,
    load_dataset,
    run_curves,
    simulate,
    stays_reached,
    strategy_to_run,
    subsample,
    with_prevalence,
)
from activelearning.strategies import (
    STRATEGIES,
    PoolView,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
)
from labeling.datasets import AnnotatorLabel, DatasetRecord
from reviewapp.content_keys import NEAR_DUPLICATE_JACCARD, normalise, shingles


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
def test_run_curves_stops_once_the_mean_has_stayed_at_the_target(setup: SimulationSetup) -> None:
    checkpoints = [10, 20, 40, 80, 160, 320]
    until = stays_reached({"macro_f1": 0.0}, beyond=2.0)
    points = run_curves(setup, "random", seeds=[0, 1], checkpoints=checkpoints, until=until)
    assert [labels for labels, _ in mean_curve(points)] == [10, 20]
    everything = run_curves(replace(setup, mc_samples=2), "random", seeds=[0], checkpoints=[10, 400, 500])
    assert [p.labels for p in everything] == [10, 400]  # the pool ran out


# --- a test split that shares no content with the pool -----------------------------------------------


def shingle_matrix(texts: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """Rows of 0/1 shingle indicators (by crc32 value) and each row's shingle count."""
    vocabulary: dict[int, int] = {}
    rows, cols = [], []
    for row, text in enumerate(texts):
        for value in shingles(normalise(text)):
            rows.append(row)
            cols.append(vocabulary.setdefault(value, len(vocabulary)))
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(vocabulary)))
    return matrix, np.asarray(matrix.sum(axis=1)).ravel()


def assert_no_shared_content(pool: list[str], test: list[str]) -> None:
    """Brute force over every (pool, test) pair: no equal normalised text, no Jaccard >= the threshold."""

    def same(text: str) -> str:  # punctuation-only texts are compared as written
        return normalise(text) or "raw:" + text.strip()

    test_normal = {same(t) for t in test}
    assert not [p for p in pool if same(p) in test_normal]
    matrix, sizes = shingle_matrix(pool + test)
    a, b = matrix[: len(pool)], matrix[len(pool) :]
    common = (a @ b.T).toarray()
    union = sizes[: len(pool), None] + sizes[None, len(pool) :] - common
    jaccard = np.divide(common, union, out=np.zeros_like(common), where=union > 0)
    near = np.argwhere(jaccard >= NEAR_DUPLICATE_JACCARD)
    assert not [(pool[i], test[j]) for i, j in near[:5]], f"{len(near)} near-duplicate pairs cross the split"


@pytest.mark.slow
def test_convabuse_pool_shares_no_exact_or_near_duplicate_text_with_its_test_split(convabuse_dir: Path) -> None:
    dataset = load_dataset(convabuse_dir, "convabuse")
    pool = [t for t, held in zip(dataset.texts, dataset.test, strict=True) if not held]
    test = [t for t, held in zip(dataset.texts, dataset.test, strict=True) if held]
    assert len(test) > 800 and len(pool) > 2000  # the authors' test split is kept whole
    assert_no_shared_content(pool, test)
    dropped = next(note for note in dataset.notes if "pool rows sharing content" in note)
    assert int(dropped.split(": ")[2].split(" ")[0]) > 1000  # "hi", "yes", "stupid": short texts repeat


def test_a_hashed_split_keeps_duplicates_and_near_duplicates_on_one_side(tmp_path: Path) -> None:
    base = [f"you are a {word} and everyone in this thread knows it" for word in ("clown", "genius", "bot")]
    rows = []
    for i in range(300):
        text = base[i % 3] if i % 2 else f"comment number {i} about the weather"
        variant = text.upper() + "!!" if i % 5 == 0 else (text + " ok" if i % 7 == 0 else text)
        rows.append({"text": variant, "label": "spam" if i % 4 == 0 else "ham"})
    dataset = load_dataset(write_csv(tmp_path / "d.csv", rows), "csv")
    pool = [t for t, held in zip(dataset.texts, dataset.test, strict=True) if not held]
    test = [t for t, held in zip(dataset.texts, dataset.test, strict=True) if held]
    assert pool and test
    assert_no_shared_content(pool, test)
    assert any("stable hash of the content group" in note for note in dataset.notes)


def test_grouped_dev_split_never_splits_a_content_group() -> None:
    groups = np.repeat(np.arange(50), 4)
    train, dev = grouped_dev_split(np.arange(200), groups, 0.2, np.random.default_rng(0))
    assert not set(groups[train]) & set(groups[dev])
    assert 40 <= len(dev) <= 44 and len(train) + len(dev) == 200


# --- strategies that coincide for one sigmoid ------------------------------------------------------------


def test_least_confidence_margin_and_entropy_pick_the_same_items_for_one_sigmoid() -> None:
    gen = np.random.default_rng(5)
    for trial in range(20):
        probs = gen.random((500, 1)) ** gen.uniform(0.2, 5)  # skewed both ways, like trained heads
        ranks = [np.argsort(-f(probs), kind="stable") for f in (least_confidence_scores, margin_scores, entropy_scores)]
        assert np.array_equal(ranks[0], ranks[1]) and np.array_equal(ranks[0], ranks[2])
        covered = gen.random(500) < 0.3
        picks = [
            STRATEGIES[n].select(PoolView(probs, covered), 40, np.random.default_rng(trial))
            for n in ("least_confidence", "margin", "entropy")
        ]
        assert np.array_equal(picks[0], picks[1]) and np.array_equal(picks[0], picks[2])
    # Not a general identity: with two sigmoids (two policies) the orders differ.
    probs = gen.random((500, 2))
    assert not np.array_equal(np.argsort(-least_confidence_scores(probs)), np.argsort(-entropy_scores(probs)))


def test_binary_tasks_run_the_three_uncertainty_strategies_once() -> None:
    requested = ["least_confidence", "margin", "entropy", "bald", "margin+balanced", "badge+balanced"]
    binary = distinct_strategies(requested, "binary")
    assert binary == {
        "uncertainty": ["least_confidence", "margin", "entropy"],
        "bald": ["bald"],
        "uncertainty+balanced": ["margin+balanced"],
        "badge+balanced": ["badge+balanced"],
    }
    assert strategy_to_run("uncertainty+balanced") == ("entropy", True)
    assert list(distinct_strategies(requested, "multiclass")) == requested


# --- reading curves: seed means, crossings that stay, intervals over seeds --------------------------------


def test_labels_to_stay_ignores_an_early_touch_of_the_target() -> None:
    curve = [(20, 0.5), (40, 0.81), (80, 0.7), (160, 0.9), (320, 0.85)]
    assert labels_to_reach(curve, 0.8) == pytest.approx(20 + 0.3 / 0.31 * 20)  # the noisy first touch
    assert labels_to_stay(curve, 0.8) == pytest.approx(80 + 0.1 / 0.2 * 80)
    assert labels_to_stay(curve, 0.88) is None


def curves(name: str, speed: float, seeds: int, noise: float) -> list[CurvePoint]:
    gen = np.random.default_rng(len(name))
    labels = geometric_checkpoints(20, 2000, 1.2)
    return [
        CurvePoint(name, seed, n, 1 - np.exp(-speed * n / 300) + gen.normal(0, noise), 0.0, 0.0, 0, 0.0)
        for seed in range(seeds)
        for n in labels
    ]


def test_bootstrap_interval_excludes_one_only_when_seeds_agree_that_a_strategy_is_faster() -> None:
    random = curves("random", 1.0, 10, 0.01)
    faster = bootstrap_ratio(curves("fast", 2.0, 10, 0.01), random, "macro_f1", 0.9, resamples=300)
    assert faster.ratio == pytest.approx(0.5, abs=0.08) and faster.high < 1.0
    same = bootstrap_ratio(curves("same", 1.0, 10, 0.08), random, "macro_f1", 0.9, resamples=300)
    assert same.low < 1.0 < same.high
    assert declare_best({"fast": faster, "same": same}) == (
        "fast",
        "fast's interval excludes 1.0 and every other strategy's",
    )
    best, why = declare_best({"same": same})
    assert best is None and why == "no strategy beats random within the interval"


# --- low prevalence and head settings off test ------------------------------------------------------------


def test_prevalence_subsamples_the_pool_and_weights_the_test_split(tmp_path: Path) -> None:
    # Texts far apart (hex digests), so content grouping has no near-duplicate candidates to check.
    texts = [hashlib.sha256(str(i).encode()).hexdigest()[:24] for i in range(3000)]
    rows = [{"text": text, "label": "harmful" if i % 5 == 0 else "fine"} for i, text in enumerate(texts)]
    dataset = load_dataset(write_csv(tmp_path / "d.csv", rows), "csv", positive="harmful")
    rare = with_prevalence(dataset, 0.02)
    pool_y, test_y = rare.y[~rare.test], rare.y[rare.test]
    assert pool_y.mean() == pytest.approx(0.02, abs=0.001)
    weight = rare.test_weight[rare.test]
    assert (weight * test_y).sum() / weight.sum() == pytest.approx(0.02)
    assert rare.test.sum() == dataset.test.sum()  # every test item kept, positives weighted
    capped = subsample(rare, max_pool=None, max_test=200)
    weight = capped.test_weight[capped.test]
    assert (weight * capped.y[capped.test]).sum() / weight.sum() == pytest.approx(0.02)
    with pytest.raises(SimulationError, match="binary"):
        with_prevalence(replace(dataset, task="multiclass"), 0.02)


@pytest.mark.slow
def test_head_settings_are_chosen_without_the_test_split(setup: SimulationSetup) -> None:
    blind = replace(
        setup,
        x_test=np.full_like(setup.x_test, np.nan),  # any use of test features would poison the scores
        y_test=np.full_like(setup.y_test, -1),
        groups_pool=np.arange(len(setup.y_pool)) // 2,
    )
    slow = replace(setup.head, lr=1e-5, max_epochs=2)
    chosen, trials = choose_head(blind, [slow, setup.head], seeds=[0], budgets=[200])
    assert chosen == setup.head and trials[1].dev_score > trials[0].dev_score
