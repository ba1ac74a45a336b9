"""Content groups for datasets split by content (`group_by='content'`, the default for new ones).

Near-duplicate grouping is not something SQL can do, so it happens here, once per item: the
first content-grouped snapshot that takes an item stores its group in `ContentGroupKey`, and
the snapshot's `INSERT … SELECT` then hashes the stored key (`splits.group_key_sql`). Stored
keys never change, so an item keeps its split in every later version of every dataset.

Order. `reviewapp.content_keys.content_groups` is stable only over an order that grows at the
end. The order used is that of the stored keys (their ids), extended by the newly keyed items
in the order of their first gold label (then item id). Items enter datasets only through gold
labels, and an item's first gold label never changes (gold labels are immutable), so that is
the order items became eligible. It is not the gold label ids themselves: two adjudications can
commit out of id order, and a snapshot may have seen the later id first; the stored order is
what a snapshot actually saw. Keys are assigned under a transaction-level advisory lock, so two
builds never number or group new items concurrently.

Held-out leaks. Because groups are stable, a late item can be a near duplicate of two groups
that were founded apart and may lie in different splits (`ContentGroups.bridges`). The held-out
(dev/test) items that `content_keys.leaking_rows` marks for a snapshot are left out of that
version, and counted in its stats: a held-out item then shares no exact or near-duplicate text
with any other split, and no item ever moves to another split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection

from reviewapp.content_keys import CONTENT_KEY_VERSION, ContentGroups, content_groups, leaking_rows

from .models import ContentGroupKey, Dataset, Split
from .splits import group_key, split_for

# pg_advisory_xact_lock key for assigning content groups (any constant unique in the project).
_KEYING_LOCK = 0x65787073  # "exps"
HELD_OUT = (Split.DEV.value, Split.TEST.value)


@dataclass(frozen=True)
class KeyedContent:
    """Every keyed item, in key order, with its stored group and the groups' near-duplicate bridges."""

    item_ids: list[int]
    groups: ContentGroups

    def group_of(self) -> dict[int, str]:
        return dict(zip(self.item_ids, self.groups.keys, strict=True))


def content_keys_assign(*, items_sql: str, params: Sequence[Any]) -> KeyedContent:
    """Store the content group of every item `items_sql` selects (a `SELECT <item id> …`) that has none.

    Call inside the snapshot's transaction: the lock is held until it commits. Every stored item
    is regrouped (in stored order) so that new items can join earlier groups and bridges are
    known; stored keys win over the regrouping (they differ only if an item's text was changed).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_KEYING_LOCK])
        cursor.execute(
            "SELECT k.item_id, i.text, i.media_urls, k.group_key FROM exports_contentgroupkey k "
            "JOIN reviewapp_contentitem i ON i.id = k.item_id WHERE k.key_version = %s ORDER BY k.id",
            [CONTENT_KEY_VERSION],
        )
        stored = cursor.fetchall()
        cursor.execute(
            f"""
            SELECT i.id, i.text, i.media_urls FROM reviewapp_contentitem i
            WHERE i.id IN ({items_sql}) AND NOT EXISTS (
                SELECT 1 FROM exports_contentgroupkey k WHERE k.item_id = i.id AND k.key_version = %s)
            ORDER BY (SELECT min(f.id) FROM labeling_goldlabel f WHERE f.item_id = i.id), i.id
            """,  # noqa: S608 (items_sql is fixed SQL from snapshots.py; values are parameters)
            [*params, CONTENT_KEY_VERSION],
        )
        new = cursor.fetchall()
    rows = [row[:3] for row in stored] + list(new)
    regrouped = content_groups(
        [text or "" for _, text, _ in rows],
        fallback_keys=[_fallback_key(item, text, media) for item, text, media in rows],
    )
    # Map regrouped keys of stored items to what is stored, so new members join the stored group.
    translate: dict[str, str] = {}
    for row, (*_, key) in enumerate(stored):
        translate.setdefault(regrouped.keys[row], key)
    keys = [row[3] for row in stored] + [translate.get(key, key) for key in regrouped.keys[len(stored) :]]
    ContentGroupKey.objects.bulk_create(
        [
            ContentGroupKey(item_id=item, key_version=CONTENT_KEY_VERSION, group_key=key)
            for (item, _, _), key in zip(new, keys[len(stored) :], strict=True)
        ],
        batch_size=5000,
    )
    groups = ContentGroups(keys=keys, exact=regrouped.exact, bridges=regrouped.bridges)
    return KeyedContent(item_ids=[row[0] for row in rows], groups=groups)


def _fallback_key(item_id: int, text: str | None, media_urls: Any) -> str:
    """The group of an item whose text normalises to nothing ('?', ':)', media only).

    The same raw text (outer spaces aside) is one group, then the same media references; an item
    with neither stands alone.
    """
    if text and text.strip():
        return "raw:" + hashlib.md5(text.strip().encode(), usedforsecurity=False).hexdigest()
    if isinstance(media_urls, list) and media_urls:
        return "media:" + "\n".join(sorted(str(url) for url in media_urls))
    return f"item:{item_id}"


def held_out_leaks(*, keyed: KeyedContent, members: set[int], dataset: Dataset) -> dict[int, str]:
    """Held-out member items with a near duplicate in another split of the same snapshot: item → split.

    Splits are computed with `split_for`, the Python twin of the SQL that assigns them.
    """
    if not members:
        return {}
    group_of = keyed.groups.keys
    split = np.asarray(
        [
            split_for(
                salt=dataset.split_salt,
                key=group_key(group_by=dataset.group_by, item_id=item, text="", metadata={}, content_group=group),
                train_percent=dataset.train_percent,
                dev_percent=dataset.dev_percent,
            )
            if item in members
            else ""
            for item, group in zip(keyed.item_ids, group_of, strict=True)
        ]
    )
    is_member = split != ""
    within = [(a, b) for a, b in keyed.groups.bridges if is_member[a] and is_member[b]]
    snapshot_groups = ContentGroups(keys=keyed.groups.keys, exact=keyed.groups.exact, bridges=within)
    leaking = leaking_rows(snapshot_groups, split, held_out=HELD_OUT)
    return {keyed.item_ids[row]: str(split[row]) for row in np.flatnonzero(leaking)}
