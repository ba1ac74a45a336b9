"""Content keys: exact and near-duplicate texts share a group; groups are stable as items arrive."""

from __future__ import annotations

import numpy as np
import pytest

from labeling.datasets import read_convabuse
from reviewapp.content_keys import (
    NEAR_DUPLICATE_JACCARD,
    content_groups,
    exact_key,
    jaccard,
    leaking_rows,
    normalise,
    shingles,
)


def test_normalise_folds_case_unicode_punctuation_and_space():
    assert normalise("  Hello,\tWORLD!! ") == "hello world"
    assert normalise("ｈｅｌｌｏ") == "hello"  # full-width letters (NFKC)
    assert normalise("Straße") == normalise("STRASSE")  # case folding, not lower()
    assert normalise("!!! ...") == ""
    assert exact_key("  ") == ""
    assert exact_key("?") == exact_key(" ? ") != exact_key("??") != ""  # punctuation only: by raw text
    assert exact_key("Hi there") == exact_key("hi, THERE!")


def test_near_duplicates_share_a_group_and_distinct_texts_do_not():
    texts = [
        "you are the worst assistant I have ever talked to",
        "You are the worst assistant I have ever talked to!!",  # exact after normalising
        "you are the worst assistant i have ever talked to lol",  # near duplicate
        "what time is it in london right now",
        "ok",
        "ok.",
    ]
    groups = content_groups(texts)
    assert groups.keys[0] == groups.keys[1] == groups.keys[2]
    assert len({groups.keys[0], groups.keys[3], groups.keys[4]}) == 3
    assert groups.keys[4] == groups.keys[5]  # too short to shingle, grouped exactly


def test_groups_are_stable_when_items_are_appended():
    texts = [f"message number {i} about the weather in city {i * 7}" for i in range(200)]
    before = content_groups(texts)
    after = content_groups([*texts, texts[3] + " again", "brand new text that matches nothing at all"])
    assert after.keys[:200] == before.keys


def test_rows_without_text_use_their_fallback_key():
    groups = content_groups(["", "  ", "same"], fallback_keys=["media:a", "media:a", "x"])
    assert groups.keys[0] == groups.keys[1] == "x:media:a"


def test_bridging_rows_are_kept_out_of_held_out_data():
    a = "the quick brown fox jumps over the lazy dog near the river bank"
    c = "the quick brown fox jumps over the lazy cat near the river bend"
    b = "the quick brown fox jumps over the lazy dog near the river bend"  # near both
    assert jaccard(shingles(normalise(a)), shingles(normalise(c))) < NEAR_DUPLICATE_JACCARD
    groups = content_groups([a, c, b, b])
    assert groups.keys[0] != groups.keys[1] and groups.keys[2] == groups.keys[0]
    assert groups.bridges == [(1, 2)]
    split = np.array([0, 2, 0, 0])  # c held out, b (twice) in train
    assert leaking_rows(groups, split, held_out=(2,)).tolist() == [False, True, False, False]
    split = np.array([2, 0, 2, 2])  # a and both copies of b held out, c in train
    assert leaking_rows(groups, split, held_out=(2,)).tolist() == [False, False, True, True]


@pytest.mark.slow
def test_on_convabuse_every_near_duplicate_pair_is_grouped_or_a_bridge(convabuse_dir):
    """Brute force over all pairs of the shipped data: LSH misses no pair at or above the threshold."""
    texts = [record.text for record in read_convabuse(convabuse_dir)]
    groups = content_groups(texts)
    sets = [shingles(normalise(text)) for text in texts]
    bridged = {frozenset(pair) for pair in groups.bridges}
    exact = [exact_key(text) for text in texts]
    checked = 0
    for i in range(len(texts)):
        for j in range(i):
            if exact[i] and exact[i] == exact[j]:
                assert groups.keys[i] == groups.keys[j]
            elif sets[i] and sets[j] and len(sets[i] & sets[j]) and jaccard(sets[i], sets[j]) >= NEAR_DUPLICATE_JACCARD:
                checked += 1
                same = groups.keys[i] == groups.keys[j]
                assert same or any(
                    frozenset((a, b)) in bridged
                    for a in range(len(texts))
                    if exact[a] == exact[i]
                    for b in range(len(texts))
                    if exact[b] == exact[j]
                ), (texts[i], texts[j])
    assert checked > 50  # the data does hold near (not exact) duplicates
