"""Stable, group-aware splits: SQL and Python agree, and adding items never moves old ones."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from labeling.exports.models import ContentGroupKey
from labeling.exports.rows import snapshot_rows
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.exports.splits import group_key, normalise_text, split_for
from reviewapp.audit import SYSTEM
from reviewapp.content_keys import CONTENT_KEY_VERSION, NEAR_DUPLICATE_JACCARD, exact_key, jaccard, normalise, shingles
from reviewapp.models import ContentItem
from tests.exports.conftest import body


def build(dataset):  # type: ignore[no-untyped-def]
    return snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)


def new_dataset(group_by: str = "", slug: str = "ds"):  # the item rule unless a test names another  # type: ignore[no-untyped-def]
    return dataset_create(slug=slug, name=slug, filters=SnapshotFilter(), actor=SYSTEM, group_by=group_by)


@pytest.mark.parametrize("group_by", ["", "text", "content", "meta:conversation_id"])
def test_sql_and_python_assign_the_same_split(hate, make_gold, group_by: str) -> None:
    texts = ["Hello  World", "hello world", "\tHELLO world ", "other", "", "Ünïcode Text", "Hello, World!!"]
    for n, text in enumerate(texts * 2):
        make_gold(hate, text=text, metadata={"conversation_id": f"conv-{n % 3}"} if n % 4 else {})
    dataset = new_dataset(group_by)
    snapshot = build(dataset)
    stored = dict(ContentGroupKey.objects.values_list("item_id", "group_key"))
    assert bool(stored) == (group_by == "content")
    for row in snapshot_rows(snapshot):
        item = ContentItem.objects.get(pk=row["item_id"])
        key = group_key(
            group_by=group_by,
            item_id=item.pk,
            text=item.text,
            metadata=item.metadata,
            content_group=stored.get(item.pk),
        )
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


WORDS = [
    "abandon",
    "ability",
    "absorb",
    "abuse",
    "academy",
    "accent",
    "accept",
    "access",
    "accident",
    "account",
    "accuse",
    "achieve",
    "acid",
    "acoustic",
    "acquire",
    "across",
    "action",
    "actor",
    "actress",
    "actual",
    "adapt",
    "address",
    "adjust",
    "admit",
    "adult",
    "advance",
    "advice",
    "aerobic",
    "affair",
    "afford",
    "afraid",
    "again",
    "agent",
    "agree",
    "ahead",
    "aim",
    "airport",
    "aisle",
    "alarm",
    "album",
    "alcohol",
    "alert",
    "alien",
    "alley",
    "allow",
    "almost",
]


def version_splits(api, slug: str) -> tuple[dict[str, object], dict[int, str]]:  # type: ignore[no-untyped-def]
    """Build a version through the API; its JSON and each item's split from its JSONL export."""
    response = api.post(f"/api/v1/datasets/{slug}/versions/", {}, format="json")
    assert response.status_code == 201, response.content
    version = response.json()
    rows = [json.loads(line) for line in body(api.get(version["exports"]["jsonl"])).splitlines()]
    return version, {row["item_id"]: row["split"] for row in rows}


def test_content_grouping_is_the_default_and_never_moves_an_item(api, hate, make_gold) -> None:
    """Later versions add exact and near duplicates of earlier texts and new texts: nothing moves."""
    sentences = [" ".join(random.Random(n).sample(WORDS, 8)) for n in range(40)]  # pairwise far apart
    originals = {make_gold(hate, text=text).item_id: text for text in sentences}
    even = {"train_percent": 40, "dev_percent": 30}  # every split gets some of the forty texts
    created = api.post(
        "/api/v1/datasets/", {"slug": "by-content", "name": "By content", "build": False, **even}, format="json"
    ).json()
    assert created["group_by"] == "content"
    assert created["split_definition"]["content_key_version"] == CONTENT_KEY_VERSION
    first, before = version_splits(api, "by-content")
    assert set(before) == set(originals) and len(set(before.values())) == 3

    copies = {}
    for n, (item, text) in enumerate(originals.items()):
        copy = text.upper() + "!!" if n % 2 else text + " lol"  # an exact, then a near duplicate
        copies[make_gold(hate, text=copy).item_id] = item
    fresh = [make_gold(hate, text=" ".join(random.Random(-n).sample(WORDS, 8))).item_id for n in range(1, 21)]
    second, after = version_splits(api, "by-content")
    assert second["held_out_excluded"] == {"dev": 0, "test": 0}
    assert {item: after[item] for item in before} == before  # earlier items keep their split
    assert all(after[copy] == before[original] for copy, original in copies.items())  # duplicates follow
    assert set(fresh) <= set(after)
    assert second["split_definition"] == first["split_definition"]


def test_a_held_out_item_bridged_to_train_by_a_late_near_duplicate_is_left_out(api, hate, make_gold) -> None:
    """a (train) and c (held out) are founded apart; b, near both, joins a in train: c leaves the version."""
    a = "the quick brown fox jumps over the lazy dog near the river bank"
    c = "the quick brown fox jumps over the lazy cat near the river bend"
    b = "the quick brown fox jumps over the lazy dog near the river bend"

    def split(text: str, salt: str) -> str:
        return split_for(salt=salt, key="content:" + exact_key(text), train_percent=80, dev_percent=10)

    for attempt in range(200):  # a fresh salt each time, until a lands in train and c in held-out data
        slug = f"bridged-{attempt}"
        salt = api.post("/api/v1/datasets/", {"slug": slug, "name": slug, "build": False}, format="json").json()[
            "split_salt"
        ]
        if split(a, salt) == "train" and split(c, salt) != "train":
            break
    held_out = split(c, salt)
    a_set, b_set, c_set = (shingles(normalise(text)) for text in (a, b, c))
    assert jaccard(a_set, c_set) < NEAR_DUPLICATE_JACCARD <= min(jaccard(a_set, b_set), jaccard(b_set, c_set))
    a_item, c_item = make_gold(hate, text=a).item_id, make_gold(hate, text=c).item_id
    _, before = version_splits(api, slug)
    assert before == {a_item: "train", c_item: held_out}

    b_item = make_gold(hate, text=b).item_id
    second, after = version_splits(api, slug)
    assert after == {a_item: "train", b_item: "train"}  # c is not moved to train: it is left out
    assert second["held_out_excluded"][held_out] == 1 and second["row_count"] == 2


def test_a_dataset_never_changes_its_split_rule(api, hate, make_gold) -> None:
    make_gold(hate, text="some text")
    created = api.post(
        "/api/v1/datasets/", {"slug": "fixed", "name": "Fixed", "group_by": "", "build": False}, format="json"
    ).json()
    for method in (api.patch, api.put):
        response = method("/api/v1/datasets/fixed/", {"group_by": "content", "split_salt": "x"}, format="json")
        assert response.status_code == 409 and "create a new dataset" in response.json()["detail"]
    again = api.post("/api/v1/datasets/", {"slug": "fixed", "name": "Fixed", "group_by": "content"}, format="json")
    assert again.status_code == 400 and "exists already" in again.content.decode()
    created.pop("first_version"), created.pop("first_build")
    assert api.get("/api/v1/datasets/fixed/").json() == created | {"latest_version": None}
    version = api.post("/api/v1/datasets/fixed/versions/", {}, format="json").json()
    assert version["split_definition"]["group_by"] == "" and version["held_out_excluded"] is None
    assert version["split_definition"]["held_out_leaks"] == "not checked"


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
