"""On the shipped ConvAbuse gold: a dataset split by content holds out no duplicated text.

Held-out means dev and test. The duplicate check is brute force over every pair, independent of
the MinHash index the product uses: same text after `normalise`, or character 5-gram Jaccard at
or above `NEAR_DUPLICATE_JACCARD`. The item rule (each item on its own, the old default) leaks on
the same data, which is what makes the check able to fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest

from labeling.datasets import read_convabuse
from labeling.models import GoldLabel
from reviewapp.content_keys import NEAR_DUPLICATE_JACCARD, normalise
from reviewapp.models import ContentItem
from tests.exports.conftest import body
from tests.factories import PolicyFactory

pytestmark = pytest.mark.slow


@pytest.fixture
def convabuse_gold(db, convabuse_dir):  # type: ignore[no-untyped-def]
    """Every ConvAbuse example with a crowd majority as an item with a gold label (3,937 of 4,185)."""
    policy = PolicyFactory(key="bot-abuse", name="Abuse towards agents")
    records = [record for record in read_convabuse(convabuse_dir) if record.label is not None]
    items = ContentItem.objects.bulk_create(
        ContentItem(source="convabuse", external_id=record.external_id, text=record.text, metadata={"language": "en"})
        for record in records
    )
    GoldLabel.objects.bulk_create(
        GoldLabel(
            item=item,
            policy=policy,
            policy_version=policy.current_version(),
            source="consensus",
            route="backfill",
            labels=[record.label],
        )
        for item, record in zip(items, records, strict=True)
    )
    return len(records)


def grams(text: str) -> frozenset[str]:
    padded = f" {normalise(text)} "
    return frozenset(padded[i : i + 5] for i in range(len(padded) - 4)) if len(padded) >= 7 else frozenset()


def duplicated(held_out: Iterable[str], others: Iterable[str]) -> list[str]:
    """Held-out texts with an exact (normalised) or near duplicate among `others`, by brute force."""
    other_texts = {normalise(text) for text in others} - {""}
    other_grams = [g for g in {grams(text) for text in others} if g]
    found = []
    for text in held_out:
        mine = grams(text)
        if normalise(text) in other_texts or (
            mine and any(len(mine & g) >= NEAR_DUPLICATE_JACCARD * len(mine | g) for g in other_grams)
        ):
            found.append(text)
    return found


def build(api, slug: str, **fields: object) -> tuple[dict, dict[str, list[str]], str]:  # type: ignore[type-arg]
    """Create a dataset and its first version through the API: the version, texts per split, the header."""
    created = api.post("/api/v1/datasets/", {"slug": slug, "name": slug, "build": False, **fields}, format="json")
    assert created.status_code == 201, created.content
    version = api.post(f"/api/v1/datasets/{slug}/versions/", {}, format="json")
    assert version.status_code == 201, version.content
    export = api.get(version.json()["exports"]["jsonl"])
    texts: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for line in body(export).splitlines():
        row = json.loads(line)
        texts[row["split"]].append(row["text"])
    return version.json(), texts, export["X-Reviewapp-Split-Definition"]


def test_held_out_convabuse_shares_no_text_with_train_or_dev(api, convabuse_gold) -> None:
    version, texts, header = build(api, "convabuse-by-content")
    definition = version["split_definition"]
    assert definition["group_by"] == "content" and definition["content_key_version"]
    assert json.loads(header) == definition
    leaked_test = duplicated(texts["test"], texts["train"] + texts["dev"])
    leaked_dev = duplicated(texts["dev"], texts["train"])
    excluded = version["held_out_excluded"]
    print(
        f"ConvAbuse gold ({convabuse_gold} items), dataset split by content 80/10/10: "
        f"{len(texts['test'])} test and {len(texts['dev'])} dev items; test items with an exact or near duplicate "
        f"in train/dev: {len(leaked_test)}; dev items with one in train: {len(leaked_dev)}; "
        f"held-out items left out as bridged: {excluded}"
    )
    assert leaked_test == [] and leaked_dev == []
    assert len(texts["test"]) > 200 and len(texts["dev"]) > 200  # the split still holds out real data
    assert sum(excluded.values()) < 0.01 * convabuse_gold

    # The item rule, the old default, on the same data: a large share of test leaks.
    old, old_texts, _ = build(api, "convabuse-by-item", group_by="")
    assert old["split_definition"]["group_by"] == "" and old["split_definition"]["held_out_leaks"] == "not checked"
    leaked_old = duplicated(old_texts["test"], old_texts["train"] + old_texts["dev"])
    share = len(leaked_old) / len(old_texts["test"])
    print(
        f"Same gold, item rule 80/10/10: {len(leaked_old)} of {len(old_texts['test'])} test items ({share:.0%}) "
        "have an exact or near duplicate in train/dev"
    )
    assert share > 0.2
