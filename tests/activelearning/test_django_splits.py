"""Splits by content: no held-out item shares its text with train or dev, splits never move, and a
champion trained under another split is compared only on items it never saw.

Near duplicates are checked here by brute force with this file's own normalisation and character
5-gram Jaccard (every pair that shares a 5-gram is compared exactly), not by the module under test.
"""

from __future__ import annotations

import io
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.management import call_command

from activelearning.models import ModelVersion
from activelearning.services.datasets import (
    DEV,
    HELD_OUT_NEAR_DUPLICATE,
    TEST,
    TRAIN,
    gold_set,
    gold_watermark,
    held_out_unseen_by,
    label_space,
)
from activelearning.services.evaluation import held_out
from activelearning.services.numeric import split_codes
from activelearning.services.promotion import model_version_promote
from activelearning.services.splits import ITEM_ID_RULE, SplitDefinition
from labeling.models import GoldLabel, Policy
from reviewapp.content_keys import NEAR_DUPLICATE_JACCARD
from reviewapp.models import ContentItem
from tests.activelearning.test_django_helpers import al_policy, load_items, model_files, records  # noqa: F401 (fixture)
from tests.activelearning.test_django_promotion import train


def _normal(text: str) -> str:
    """NFKC, case folded; letters, digits and marks kept, every other run one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c if unicodedata.category(c)[0] in "LNM" else " " for c in folded)
    return " ".join(kept.split())


def _grams(normal: str) -> frozenset[str]:
    if len(normal) < 5:  # too short for a 5-gram: compared exactly only
        return frozenset()
    padded = f" {normal} "
    return frozenset(padded[i : i + 5] for i in range(len(padded) - 4))


def leaks(held: Sequence[str], others: Sequence[str]) -> list[int]:
    """Indices of `held` texts with an exact (normalised) or near-duplicate text among `others`."""
    other_normals = {_normal(t) for t in others}
    other_grams = [_grams(_normal(t)) for t in others]
    index: dict[str, list[int]] = defaultdict(list)
    for j, grams in enumerate(other_grams):
        for gram in grams:
            index[gram].append(j)
    out = []
    for i, text in enumerate(held):
        normal = _normal(text)
        grams = _grams(normal)
        candidates = {j for gram in grams for j in index.get(gram, ())}
        near = any(
            len(grams & other_grams[j]) / len(grams | other_grams[j]) >= NEAR_DUPLICATE_JACCARD for j in candidates
        )
        if (normal and normal in other_normals) or near:
            out.append(i)
    return out


@pytest.mark.slow
@pytest.mark.django_db
def test_imported_convabuse_gold_splits_with_no_duplicate_across_train_dev_and_test(convabuse_dir: Path) -> None:
    call_command("import_dataset", "convabuse", str(convabuse_dir), "--as-annotations", stdout=io.StringIO())
    policy = Policy.objects.get(key="abuse")
    space = label_space(policy)

    gold = gold_set(policy=policy, space=space, watermark=gold_watermark(policy.pk))  # as a round loads it

    train, dev, test = ([gold.texts[i] for i in gold.rows(code)] for code in (TRAIN, DEV, TEST))
    assert len(test) > 500 and len(dev) > 400 and gold.definition == SplitDefinition.current()
    assert leaks(test, train + dev) == []
    assert leaks(dev, train) == []
    assert leaks(test, dev) == []
    left_out = gold.skipped[HELD_OUT_NEAR_DUPLICATE]
    assert 0 <= left_out < 0.02 * len(gold.item_ids)
    # The contrast: the old rule (a hash of each item's source and external id) on the same gold.
    items = ContentItem.objects.in_bulk(
        GoldLabel.objects.filter(policy=policy).values_list("item_id", flat=True).distinct()
    )
    rows = sorted(items.values(), key=lambda item: item.pk)
    old = split_codes(
        [f"{item.source}\x1f{item.external_id}" for item in rows],
        salt=settings.AL_SPLIT_SALT,
        dev=settings.AL_DEV_FRACTION,
        test=settings.AL_TEST_FRACTION,
    )
    old_test = [rows[i].text for i in np.flatnonzero(old == TEST)]
    old_seen = [rows[i].text for i in np.flatnonzero(old != TEST)]
    old_leaks = len(leaks(old_test, old_seen))
    print(
        f"ConvAbuse gold {len(rows)} items; content-group split: train {len(train)} dev {len(dev)} test {len(test)}, "
        f"{left_out} held-out left out, 0 test items with an exact or near duplicate in train/dev; "
        f"item-id split: {old_leaks} of {len(old_test)} test items ({old_leaks / len(old_test):.1%}) do"
    )
    assert old_leaks / len(old_test) > 0.35


@pytest.mark.django_db
def test_later_gold_never_moves_an_earlier_item_to_another_split() -> None:
    policy, _ = al_policy("abuse")
    gold_ids, pool_ids = load_items(policy, "convabuse", items=900, gold=450)
    space = label_space(policy)
    early_watermark = gold_watermark(policy.pk)
    before = gold_set(policy=policy, space=space, watermark=early_watermark)
    version = policy.current_version()
    GoldLabel.objects.bulk_create(  # the rest of the items get gold later, newest item first
        GoldLabel(item_id=item_id, policy=policy, policy_version=version, source="adjudication", labels=["violating"])
        for item_id in reversed(pool_ids)
    )
    relabelled = GoldLabel.objects.filter(item_id=gold_ids[0]).get()
    GoldLabel.objects.create(  # a correction of an early item: a new gold id, the same first label
        item_id=relabelled.item_id,
        policy=policy,
        policy_version=version,
        version=2,
        supersedes=relabelled,
        source="adjudication",
        labels=["not_violating" if relabelled.labels == ["violating"] else "violating"],
    )

    after = gold_set(policy=policy, space=space, watermark=gold_watermark(policy.pk))

    split_before = dict(zip(before.item_ids.tolist(), before.split.tolist(), strict=True))
    split_after = dict(zip(after.item_ids.tolist(), after.split.tolist(), strict=True))
    assert len(split_after) > len(split_before) + 400
    assert {i: split_after[i] for i in split_before if i in split_after} == {
        i: s for i, s in split_before.items() if i in split_after
    }
    assert len(set(split_before) - set(split_after)) <= after.skipped[HELD_OUT_NEAR_DUPLICATE]
    # Later copies of an earlier text land on the earlier item's side.
    early_by_text = {_normal(t): split_before[i] for i, t in zip(before.item_ids.tolist(), before.texts, strict=True)}
    copies = [
        (split_after[i], early_by_text[_normal(t)])
        for i, t in zip(after.item_ids.tolist(), after.texts, strict=True)
        if i in set(pool_ids) and _normal(t) in early_by_text
    ]
    assert len(copies) > 20 and all(late == early for late, early in copies)
    assert np.array_equal(before.split, gold_set(policy=policy, space=space, watermark=early_watermark).split)


@pytest.mark.slow
@pytest.mark.usefixtures("model_files")
def test_a_champion_under_the_legacy_split_is_compared_only_on_items_it_never_saw(
    db, django_capture_on_commit_callbacks
) -> None:
    policy, _ = al_policy("abuse")
    _, later_ids = load_items(policy, "convabuse", items=1200, gold=400)
    champion = train(policy, django_capture_on_commit_callbacks)
    # As the migration left models registered before content splits: the item-id rule.
    ModelVersion.objects.filter(pk=champion.pk).update(
        status="champion", split_rule=ITEM_ID_RULE, split_content_key_version=""
    )
    champion.refresh_from_db()
    version = policy.current_version()
    GoldLabel.objects.bulk_create(
        GoldLabel(
            item_id=item.pk,
            policy=policy,
            policy_version=version,
            source="adjudication",
            labels=[label],
            route="backfill",  # the stratum of the first gold, so the comparison is on one stratum
        )
        for item, label in zip(
            ContentItem.objects.filter(pk__in=later_ids).order_by("pk"),
            _labels_of_records(later_ids),
            strict=True,
        )
    )
    challenger = train(policy, django_capture_on_commit_callbacks)

    decision = model_version_promote(version_id=challenger.pk)

    test_ids = held_out(challenger).gold.item_ids
    unseen, recomputed = held_out_unseen_by(
        policy=policy,
        watermark=gold_watermark(policy.pk),
        current=SplitDefinition.of(challenger),
        earlier=SplitDefinition.of(champion),
        earlier_watermark=champion.gold_watermark,
    )
    compared = sorted(unseen & set(test_ids.tolist()))
    assert recomputed and 20 <= len(compared) < len(test_ids)
    assert decision.comparison["n"] == len(compared) and decision.comparison["split_change"]["changed"] == [
        "rule",
        "content_key_version",
    ]
    assert decision.reasons[0].startswith(
        f"The split definition changed since champion v1 (rule, content_key_version: {ITEM_ID_RULE}"
    )
    assert f"compared only on the {len(compared)} of {len(test_ids)} held-out items" in decision.reasons[0]
    # What the champion trained or tuned on, recomputed here from the legacy rule.
    early = ContentItem.objects.filter(gold_labels__id__lte=champion.gold_watermark).distinct().order_by("pk")
    legacy = split_codes(
        [f"{item.source}\x1f{item.external_id}" for item in early],
        salt=champion.split_salt,
        dev=champion.split_dev_fraction,
        test=champion.split_test_fraction,
    )
    seen_texts = [item.text for item, code in zip(early, legacy, strict=True) if code != TEST]
    seen_ids = {item.pk for item, code in zip(early, legacy, strict=True) if code != TEST}
    texts = dict(ContentItem.objects.filter(pk__in=compared).values_list("pk", "text"))
    assert not seen_ids & set(compared)
    assert leaks([texts[i] for i in compared], seen_texts) == []
    # Without the restriction the champion would have been scored on items it trained on.
    assert seen_ids & set(test_ids.tolist())


def _labels_of_records(item_ids: list[int]) -> list[str]:
    """The crowd-majority label of each item, as `load_items` gives it (violating / not_violating)."""
    by_external = {r.external_id: r.label for r in records("convabuse", 1200)}
    items = ContentItem.objects.filter(pk__in=item_ids).order_by("pk")
    return ["violating" if by_external[item.external_id] == "abusive" else "not_violating" for item in items]
