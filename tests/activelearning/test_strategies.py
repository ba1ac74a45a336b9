"""Query strategies on constructed pools where the right pick is known."""

from __future__ import annotations

import numpy as np
import pytest

from activelearning.strategies import (
    STRATEGIES,
    PoolView,
    StrategyError,
    balanced_quotas,
    get_strategy,
    gradient_embeddings,
    predicted_groups,
)


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pool(probs: list[list[float]], covered: list[int] = (), **extra: np.ndarray) -> PoolView:  # type: ignore[assignment]
    p = np.asarray(probs, dtype=float)
    mask = np.zeros(len(p), dtype=bool)
    mask[list(covered)] = True
    return PoolView(probs=p, covered=mask, **extra)


def pick(name: str, view: PoolView, k: int, *, balanced: bool = False) -> list[int]:
    return get_strategy(name, balanced=balanced).select(view, k, rng()).tolist()


def test_registry_holds_every_required_strategy() -> None:
    assert set(STRATEGIES) == {"random", "least_confidence", "margin", "entropy", "bald", "coreset", "badge"}


def test_unknown_strategy_is_refused_with_the_known_names() -> None:
    with pytest.raises(StrategyError, match="least_confidence"):
        get_strategy("uncertainty")


def test_random_returns_distinct_uncovered_items_and_is_seeded() -> None:
    view = pool([[0.5]] * 20, covered=[0, 1, 2])
    first = get_strategy("random").select(view, 10, np.random.default_rng(3))
    again = get_strategy("random").select(view, 10, np.random.default_rng(3))
    assert first.tolist() == again.tolist()
    assert len(set(first.tolist())) == 10 and not {0, 1, 2} & set(first.tolist())


def test_least_confidence_picks_the_item_nearest_one_half_skipping_covered() -> None:
    view = pool([[0.9], [0.5], [0.2], [0.6]], covered=[1])
    assert pick("least_confidence", view, 3) == [3, 2, 0]


def test_margin_picks_the_item_whose_least_sure_policy_is_a_coin_flip() -> None:
    # Item 0 is mildly unsure on both policies; item 1 is a coin flip on one, sure on the other.
    # Least confidence prefers item 0 (its best joint labelling is less likely), margin item 1.
    view = pool([[0.55, 0.55], [0.51, 0.99]])
    assert pick("margin", view, 1) == [1]
    assert pick("least_confidence", view, 1) == [0]


def test_entropy_adds_uncertainty_over_policies() -> None:
    # H(0.7) + H(0.7) = 1.22 nats beats H(0.5) + H(0.999) = 0.70; margin goes the other way.
    view = pool([[0.5, 0.999], [0.7, 0.7], [0.95, 0.95]])
    assert pick("entropy", view, 1) == [1]
    assert pick("margin", view, 1) == [0]


def test_bald_prefers_model_disagreement_over_label_noise() -> None:
    # Both items average to 0.5; only item 1's dropout samples disagree (epistemic uncertainty).
    samples = np.zeros((4, 3, 1))
    samples[:, 0, 0] = 0.5  # every sample unsure: aleatoric, mutual information 0
    samples[:, 1, 0] = [0.02, 0.98, 0.02, 0.98]
    samples[:, 2, 0] = 0.9
    view = pool([[0.5], [0.5], [0.9]], mc_probs=samples)
    assert pick("bald", view, 1) == [1]
    assert pick("entropy", view, 2)[0] in (0, 1)  # entropy cannot tell the two apart


def test_coreset_covers_far_clusters_before_near_duplicates() -> None:
    embeddings = np.array([[0.0, 0.0], [10.0, 0.0], [10.1, 0.0], [0.0, 8.0], [0.5, 0.0]])
    view = pool([[0.5]] * 5, covered=[0], embeddings=embeddings)
    assert pick("coreset", view, 2) == [2, 3]  # farthest first, then the other cluster, not [1]
    assert pick("coreset", view, 4) == [2, 3, 4, 1]


def test_coreset_without_covered_items_still_spreads_out() -> None:
    embeddings = np.array([[0.0, 0.0], [0.1, 0.0], [9.0, 9.0]])
    chosen = pick("coreset", pool([[0.5]] * 3, embeddings=embeddings), 2)
    assert 2 in chosen and set(chosen) != {0, 1}


def test_badge_starts_at_the_largest_gradient_and_never_picks_a_duplicate() -> None:
    hidden = np.array([[3.0, 0.0], [3.0, 0.0], [3.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    probs = [[0.4], [0.4], [0.4], [0.45], [1.0]]  # item 4 is certain: zero gradient
    view = pool(probs, hidden=hidden)
    chosen = pick("badge", view, 2)
    assert chosen[0] in (0, 1, 2)  # |0.4 · 3| is the largest gradient
    # The copies of the first pick are at distance 0, so k-means++ can only move to 3 or 4.
    assert chosen[1] in (3, 4)


def test_badge_gradient_embedding_is_residual_times_hidden() -> None:
    g = gradient_embeddings(np.array([[0.2, 0.9]]), np.array([[1.0, 2.0]]))
    assert np.allclose(g, [[0.2, 0.4, -0.1, -0.2]])


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_k_distinct_uncovered_items(name: str) -> None:
    generator = np.random.default_rng(1)
    n = 60
    probs = generator.random((n, 2))
    covered = generator.random(n) < 0.3
    view = PoolView(
        probs=probs,
        covered=covered,
        mc_probs=np.clip(probs[None] + generator.normal(0, 0.1, (5, n, 2)), 0, 1),
        embeddings=generator.normal(size=(n, 4)),
        hidden=generator.normal(size=(n, 3)),
    )
    for balanced in (False, True):
        chosen = get_strategy(name, balanced=balanced).select(view, 10, np.random.default_rng(2))
        assert len(chosen) == 10 and len(set(chosen.tolist())) == 10
        assert not covered[chosen].any()
        everything = get_strategy(name, balanced=balanced).select(view, 1000, np.random.default_rng(2))
        assert sorted(everything.tolist()) == np.flatnonzero(~covered).tolist()


@pytest.mark.parametrize(("name", "missing"), [("bald", "mc_probs"), ("coreset", "embeddings"), ("badge", "hidden")])
def test_strategy_without_its_inputs_says_what_is_missing(name: str, missing: str) -> None:
    with pytest.raises(StrategyError, match=missing):
        pick(name, pool([[0.5], [0.4]]), 1)


def test_class_balanced_splits_the_batch_across_predicted_classes() -> None:
    # Negatives (p < 0.5) are all more uncertain than positives, so plain uncertainty takes only them.
    probs = [[0.49], [0.47], [0.45], [0.43], [0.60], [0.70], [0.80], [0.90]]
    assert sorted(pick("least_confidence", pool(probs), 4)) == [0, 1, 2, 3]
    assert sorted(pick("least_confidence", pool(probs), 4, balanced=True)) == [0, 1, 4, 5]


def test_class_balanced_gives_spare_quota_to_classes_that_have_items() -> None:
    probs = [[0.9], [0.1], [0.2], [0.3], [0.4]]  # one predicted positive, four negatives
    assert sorted(pick("entropy", pool(probs), 4, balanced=True)) == [0, 2, 3, 4]


def test_balanced_quotas_water_fill() -> None:
    assert balanced_quotas(np.array([1, 10]), 6).tolist() == [1, 5]
    assert balanced_quotas(np.array([5, 5, 0]), 4).tolist() == [2, 2, 0]
    assert balanced_quotas(np.array([2, 1]), 10).tolist() == [2, 1]


def test_predicted_groups_use_the_top_policy_or_none() -> None:
    groups = predicted_groups(np.array([[0.9, 0.6], [0.2, 0.7], [0.1, 0.3]]))
    assert groups.tolist() == [0, 1, 2]
