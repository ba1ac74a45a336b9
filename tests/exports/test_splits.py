"""Stable, group-aware splits: SQL and Python agree, and adding items never moves old ones."""

from __future__ import annotations

from collections import Counter

import pytest

from labeling.exports.rows import snapshot_rows
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.exports.splits import group_key, normalise_text, split_for
from reviewapp.audit import SYSTEM


def build(dataset):  # type: ignore[no-untyped-def]
    return snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)


def new_dataset(group_by: str = "", slug: str = "ds"):  # type: ignore[no-untyped-def]
    return dataset_create(slug=slug, name=slug, filters=SnapshotFilter(), actor=SYSTEM, group_by=group_by)


@pytest.mark.parametrize("group_by", ["", "text", "meta:conversation_id"])
def test_sql_and_python_assign_the_same_split(hate, make_gold, group_by: str) -> None:
    texts = ["Hello  World", "hello world", "\tHELLO world ", "other", "", "Ünïcode Text"]
    for n, text in enumerate(texts * 2):
        make_gold(hate, text=text, metadata={"conversation_id": f"conv-{n % 3}"} if n % 4 else {})
    dataset = new_dataset(group_by)
    for row in snapshot_rows(build(dataset)):
        from reviewapp.models import ContentItem

        item = ContentItem.objects.get(pk=row["item_id"])
        key = group_key(group_by=group_by, item_id=item.pk, text=item.text, metadata=item.metadata)
        assert row["split"] == split_for(
            salt=dataset.split_salt, key=key, train_percent=dataset.train_percent, dev_percent=dataset.dev_percent
        ), (group_by, item.text, key)


def test_adding_items_never_moves_existing_ones(hate, make_gold) -> None:
    for n in range(30):
        make_gold(hate, text=f"first batch {n}")
    dataset = new_dataset()
    before = {row["item_id"]: row["split"] for row in snapshot_rows(build(dataset))}
    for n in range(30):
        make_gold(hate, text=f"second batch {n}")
    after = {row["item_id"]: row["split"] for row in snapshot_rows(build(dataset))}
    assert len(after) == 60
    assert {item: after[item] for item in before} == before


def test_same_conversation_stays_in_one_split(hate, make_gold) -> None:
    for conversation in range(12):
        for turn in range(3):
            make_gold(hate, text=f"c{conversation} t{turn}", metadata={"conversation_id": f"conv-{conversation}"})
    dataset = dataset_create(
        slug="conv",
        name="conv",
        filters=SnapshotFilter(),
        actor=SYSTEM,
        group_by="meta:conversation_id",
        train_percent=34,
        dev_percent=33,
    )  # even shares, so twelve conversations all landing in one split is vanishingly unlikely
    rows = list(snapshot_rows(build(dataset)))
    splits_per_conversation: dict[str, set[str]] = {}
    for row in rows:
        conversation = row["text"].split()[0]
        splits_per_conversation.setdefault(conversation, set()).add(row["split"])
    assert all(len(splits) == 1 for splits in splits_per_conversation.values())
    assert len({split for splits in splits_per_conversation.values() for split in splits}) > 1


def test_duplicate_texts_stay_in_one_split(hate, make_gold) -> None:
    for n in range(10):
        for variant in (f"Spam offer {n}", f"spam   OFFER {n}\n"):
            make_gold(hate, text=variant)
    rows = list(snapshot_rows(build(new_dataset("text"))))
    by_text: dict[str, set[str]] = {}
    for row in rows:
        by_text.setdefault(normalise_text(row["text"]), set()).add(row["split"])
    assert len(by_text) == 10 and all(len(splits) == 1 for splits in by_text.values())


def test_an_items_policies_share_its_split(hate, spam, make_gold) -> None:
    for n in range(10):
        gold = make_gold(hate, text=f"t{n}")
        make_gold(spam, item=gold.item)
    rows = list(snapshot_rows(build(new_dataset())))
    per_item: dict[int, set[str]] = {}
    for row in rows:
        per_item.setdefault(row["item_id"], set()).add(row["split"])
    assert len(rows) == 20 and all(len(splits) == 1 for splits in per_item.values())


def test_shares_follow_the_percentages() -> None:
    counts = Counter(split_for(salt="s", key=f"item:{n}", train_percent=70, dev_percent=20) for n in range(20_000))
    assert abs(counts["train"] / 20_000 - 0.7) < 0.02 and abs(counts["dev"] / 20_000 - 0.2) < 0.02


def test_salt_decides_the_assignment() -> None:
    keys = [f"item:{n}" for n in range(200)]
    first = [split_for(salt="a", key=k, train_percent=50, dev_percent=25) for k in keys]
    second = [split_for(salt="b", key=k, train_percent=50, dev_percent=25) for k in keys]
    assert first != second
