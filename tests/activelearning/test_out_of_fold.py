"""Fold plans for out-of-fold scoring: grouped by text, stratified by class, deterministic for a seed."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from activelearning.out_of_fold import OutOfFoldError, fold_plan, item_set_sha256


def plan_of(seed: int = 0, k: int = 5):  # type: ignore[no-untyped-def]
    # 200 rows, 10 % positive; rows 0-59 are 20 texts written 3 times each.
    groups = [f"dup-{i // 3}" if i < 60 else f"text-{i}" for i in range(200)]
    strata = [1 if i % 10 == 0 else 0 for i in range(200)]
    return (
        groups,
        strata,
        fold_plan(item_ids=list(range(1000, 1200)), groups=groups, strata=strata, k=k, seed=seed, dev_fraction=0.15),
    )


def test_copies_of_a_text_share_a_fold_and_every_fold_gets_every_class() -> None:
    groups, strata, plan = plan_of()
    fold_of_group: dict[str, set[int]] = {}
    for group, fold, dev in zip(groups, plan.folds, plan.dev, strict=True):
        fold_of_group.setdefault(group, set()).add((int(fold), bool(dev)))
    assert all(len(folds) == 1 for folds in fold_of_group.values())
    assert plan.n_groups == 20 + 140
    sizes = Counter(plan.folds.tolist())
    assert set(sizes) == set(range(5)) and max(sizes.values()) - min(sizes.values()) <= 3
    for fold in range(5):
        assert {strata[i] for i in np.flatnonzero(plan.folds == fold)} == {0, 1}
        fit = plan.fit_rows(fold)
        assert not set(fit) & set(np.flatnonzero(plan.folds == fold)) and len(fit) == 200 - sizes[fold]
    assert 0.05 < plan.dev.mean() < 0.3


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    _, _, first = plan_of(seed=7)
    _, _, again = plan_of(seed=7)
    _, _, other = plan_of(seed=8)
    assert first.sha256 == again.sha256 and (first.folds == again.folds).all()
    assert other.sha256 != first.sha256 and (other.folds != first.folds).any()


def test_too_few_texts_for_k_folds_is_a_clear_error() -> None:
    with pytest.raises(OutOfFoldError, match="2 distinct texts cannot fill 3 folds"):
        fold_plan(item_ids=[1, 2, 3], groups=["a", "a", "b"], strata=[0, 0, 1], k=3, seed=0, dev_fraction=0.1)
    with pytest.raises(OutOfFoldError, match="k must be between 2 and 20"):
        plan_of(k=1)


def test_a_set_of_items_hashes_the_same_in_any_order() -> None:
    assert item_set_sha256([3, 1, 2]) == item_set_sha256(np.asarray([1, 2, 3])) != item_set_sha256([1, 2])
