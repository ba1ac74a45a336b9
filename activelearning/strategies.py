"""Query strategies: which unlabelled items reviewers should label next.

Every strategy has one signature — `select(pool, k, rng) -> indices` — and lives in the plain
dict `STRATEGIES`. Contract:
- `pool` is a `PoolView` over n items; rows with `covered=True` are labelled or already queued:
  they are never returned, and diversity methods treat them as already represented;
- the result is an int64 array of distinct row indices into the pool, drawn only from
  `pool.candidates`, of length min(k, number of candidates), most informative first where the
  method ranks;
- `rng` is the only source of randomness (sampling, tie-breaking), so a seed fixes the pick.

Probabilities are per-policy sigmoids (n, L). Uncertainty across policies assumes they are
independent given the item: the joint most-likely labelling has probability Π max(p, 1 - p),
and entropies and mutual informations add up over policies. With L = 1 these reduce to the
textbook binary formulas.

`class_balanced` wraps any strategy so a batch is split across predicted classes: with rare
harms, a pure uncertainty batch can be almost all one predicted class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

_EPS = 1e-12
_DISTANCE_CHUNK = 2048  # rows per distance block: bounds memory at chunk × n floats


class StrategyError(ValueError):
    """A strategy was asked for something its inputs cannot support (e.g. BALD without MC samples)."""


@dataclass(frozen=True)
class PoolView:
    """What a strategy may look at. All arrays share the first axis n (items).

    probs: (n, L) calibrated probabilities. covered: (n,) bool, labelled or queued.
    candidates: (n,) bool, rows that may be picked; defaults to `~covered`.
    mc_probs: (S, n, L) MC-dropout samples (BALD). embeddings: (n, d) item vectors (core-set).
    hidden: (n, h) penultimate activations of the head (BADGE).
    """

    probs: np.ndarray
    covered: np.ndarray
    candidates: np.ndarray | None = None
    mc_probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    hidden: np.ndarray | None = None

    def selectable(self) -> np.ndarray:
        mask = ~self.covered if self.candidates is None else self.candidates & ~self.covered
        return np.flatnonzero(mask)


SelectFn = Callable[[PoolView, int, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Strategy:
    name: str
    select: SelectFn
    needs: frozenset[str] = frozenset()  # PoolView fields beyond probs the caller must fill


# --- uncertainty scores (higher = more informative) ------------------------------------------


def _binary_entropy(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def least_confidence_scores(probs: np.ndarray) -> np.ndarray:
    """1 − P(most likely joint labelling) = 1 − Π_j max(p_j, 1 − p_j). Shape (n,)."""
    return 1.0 - np.prod(np.maximum(probs, 1 - probs), axis=1)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """−(P(best labelling) − P(second best)); the runner-up flips the least sure policy. Shape (n,)."""
    confident = np.maximum(probs, 1 - probs)
    best = np.prod(confident, axis=1)
    flip_ratio = np.max((1 - confident) / np.maximum(confident, _EPS), axis=1)
    return -(best * (1 - flip_ratio))


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    """Σ_j H(p_j) in nats. Shape (n,)."""
    return _binary_entropy(probs).sum(axis=1)


def bald_scores(mc_probs: np.ndarray) -> np.ndarray:
    """Mutual information between label and weights (Houlsby et al. 2011), Σ over policies. Shape (n,).

    H[E_s p] − E_s H[p]: high where dropout samples disagree with each other, not merely where
    each sample is unsure.
    """
    mean_entropy = _binary_entropy(mc_probs.mean(axis=0))
    return (mean_entropy - _binary_entropy(mc_probs).mean(axis=0)).sum(axis=1)


def _top_k(scores: np.ndarray, pool: PoolView, k: int, rng: np.random.Generator) -> np.ndarray:
    rows = pool.selectable()
    # Random tie-breaking: equal scores (e.g. an untrained model's 0.5s) must not favour pool order.
    order = np.lexsort((rng.random(len(rows)), -scores[rows]))
    return rows[order[:k]].astype(np.int64)


def _scored(score: Callable[[PoolView], np.ndarray]) -> SelectFn:
    def select(pool: PoolView, k: int, rng: np.random.Generator) -> np.ndarray:
        return _top_k(score(pool), pool, k, rng)

    return select


def select_random(pool: PoolView, k: int, rng: np.random.Generator) -> np.ndarray:
    rows = pool.selectable()
    return rng.permutation(rows)[:k].astype(np.int64)


def _require(value: np.ndarray | None, what: str, strategy: str) -> np.ndarray:
    if value is None:
        raise StrategyError(f"{strategy} needs PoolView.{what}")
    return value


def _bald(pool: PoolView) -> np.ndarray:
    return bald_scores(_require(pool.mc_probs, "mc_probs", "bald"))


# --- diversity ---------------------------------------------------------------------------------


def _sq_distances(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(points), len(to)), clipped at 0 against rounding."""
    d = (points**2).sum(1)[:, None] + (to**2).sum(1)[None, :] - 2.0 * points @ to.T
    return np.maximum(d, 0.0)


def _min_sq_distance(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    best = np.full(len(x), np.inf)
    for start in range(0, len(centres), _DISTANCE_CHUNK):
        block = _sq_distances(x, centres[start : start + _DISTANCE_CHUNK])
        best = np.minimum(best, block.min(axis=1))
    return best


def select_coreset(pool: PoolView, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018) on `embeddings`: each pick is the candidate farthest
    from everything covered or picked so far. O(n · (|covered| + k) · d)."""
    x = _require(pool.embeddings, "embeddings", "coreset").astype(np.float64)
    rows = pool.selectable()
    if k <= 0 or len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = x[rows]
    centres = x[pool.covered]
    if len(centres):
        distance = _min_sq_distance(candidates, centres)
    else:  # nothing covered yet: any start is as good as another
        distance = np.full(len(rows), np.inf)
        distance[rng.integers(len(rows))] = np.finfo(np.float64).max
    picks: list[int] = []
    for _ in range(min(k, len(rows))):
        best = int(np.argmax(distance))
        picks.append(best)
        distance = np.minimum(distance, _sq_distances(candidates, candidates[best : best + 1])[:, 0])
        distance[best] = -1.0  # never again
    return rows[np.asarray(picks)].astype(np.int64)


def gradient_embeddings(probs: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """BADGE's hallucinated last-layer gradients (n, L·h): (p_j − ŷ_j) · h for each policy j.

    ŷ is the model's own prediction; the norm grows with uncertainty and the direction with
    what the item looks like, so k-means++ on these picks items both uncertain and different.
    """
    residual = probs - (probs >= 0.5)
    return (residual[:, :, None] * hidden[:, None, :]).reshape(len(probs), -1)


def select_badge(pool: PoolView, k: int, rng: np.random.Generator) -> np.ndarray:
    """BADGE (Ash et al. 2020): k-means++ seeding over gradient embeddings of the candidates."""
    hidden = _require(pool.hidden, "hidden", "badge")
    rows = pool.selectable()
    if k <= 0 or len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    g = gradient_embeddings(pool.probs[rows], hidden[rows]).astype(np.float64)
    first = int(np.argmax((g**2).sum(1)))  # the reference implementation starts at the largest gradient
    picks = [first]
    distance = _sq_distances(g, g[first : first + 1])[:, 0]
    distance[first] = 0.0
    for _ in range(min(k, len(rows)) - 1):
        total = distance.sum()
        if total <= 0:  # every remaining candidate duplicates a pick: fill up at random
            rest = np.setdiff1d(np.arange(len(rows)), picks)
            picks.extend(rng.permutation(rest)[: min(k, len(rows)) - len(picks)].tolist())
            break
        nxt = int(rng.choice(len(rows), p=distance / total))
        picks.append(nxt)
        distance = np.minimum(distance, _sq_distances(g, g[nxt : nxt + 1])[:, 0])
        distance[nxt] = 0.0
    return rows[np.asarray(picks)].astype(np.int64)


# --- class balance -----------------------------------------------------------------------------


def predicted_groups(probs: np.ndarray) -> np.ndarray:
    """(n,) group per item: the most probable policy j when its p ≥ 0.5, else L ("none predicted")."""
    top = probs.argmax(axis=1)
    return np.where(probs.max(axis=1) >= 0.5, top, probs.shape[1])


def balanced_quotas(available: np.ndarray, k: int) -> np.ndarray:
    """Split k across groups as evenly as their sizes allow (water-filling); sums to min(k, total)."""
    quotas = np.zeros(len(available), dtype=np.int64)
    remaining = min(k, int(available.sum()))
    while remaining > 0:
        open_groups = np.flatnonzero(quotas < available)
        share = max(1, remaining // len(open_groups))
        for g in open_groups:
            take = min(share, available[g] - quotas[g], remaining)
            quotas[g] += take
            remaining -= take
            if remaining == 0:
                break
    return quotas


def class_balanced(strategy: Strategy) -> Strategy:
    """Wrap a strategy: each predicted group gets an even share of the batch.

    Groups are filled one after another and earlier picks count as covered for later groups, so
    diversity methods do not pick near-duplicates across groups.
    """

    def select(pool: PoolView, k: int, rng: np.random.Generator) -> np.ndarray:
        groups = predicted_groups(pool.probs)
        selectable = np.zeros(len(groups), dtype=bool)
        selectable[pool.selectable()] = True
        n_groups = pool.probs.shape[1] + 1
        available = np.bincount(groups[selectable], minlength=n_groups)
        picks: list[np.ndarray] = []
        covered = pool.covered.copy()
        for group, quota in enumerate(balanced_quotas(available, k)):
            if quota == 0:
                continue
            view = replace(pool, covered=covered, candidates=selectable & (groups == group))
            chosen = strategy.select(view, int(quota), rng)
            covered[chosen] = True
            picks.append(chosen)
        return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)

    return Strategy(f"{strategy.name}+balanced", select, strategy.needs)


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("random", select_random),
        Strategy("least_confidence", _scored(lambda p: least_confidence_scores(p.probs))),
        Strategy("margin", _scored(lambda p: margin_scores(p.probs))),
        Strategy("entropy", _scored(lambda p: entropy_scores(p.probs))),
        Strategy("bald", _scored(_bald), frozenset({"mc_probs"})),
        Strategy("coreset", select_coreset, frozenset({"embeddings"})),
        Strategy("badge", select_badge, frozenset({"hidden"})),
    )
}


# What people read for each strategy (forms and round pages); the keys are what the API takes.
STRATEGY_TITLES = {
    "random": "Random",
    "least_confidence": "Least confidence",
    "margin": "Margin",
    "entropy": "Entropy",
    "bald": "BALD (Monte Carlo dropout)",
    "coreset": "Core-set (diversity)",
    "badge": "BADGE (gradient embeddings)",
}


def strategy_title(name: str) -> str:
    """`"entropy+balanced"` → "Entropy, class-balanced"; an unknown name reads as itself."""
    base, balanced, _ = name.partition("+balanced")
    return STRATEGY_TITLES.get(base, base) + (", class-balanced" if balanced else "")


def get_strategy(name: str, *, balanced: bool = False) -> Strategy:
    """The registered strategy `name`, wrapped by `class_balanced` when asked."""
    try:
        strategy = STRATEGIES[name]
    except KeyError:
        raise StrategyError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    return class_balanced(strategy) if balanced else strategy
