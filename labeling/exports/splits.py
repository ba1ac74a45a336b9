"""Stable train/dev/test splits: a hash of (dataset salt, group key), never a random draw.

An item's split depends only on its dataset's salt and shares and on its group key, all fixed
when the dataset is created, so a later version that adds items never moves an existing one.
Snapshots assign splits in SQL (`split_sql`, set-based, inside `INSERT … SELECT`); `split_for`
is the same function in Python, and the tests hold the two to each other.

Group keys: each item alone (`item:<id>`), or, when the dataset names a group key, items with
the same content (`content:<group>`: exact *and* near-duplicate texts, the group assigned once
per item by `grouping.py` with `reviewapp.content_keys`; the default for new datasets), the
same normalised text (`text:<md5>`: exact duplicates after ASCII case folding and whitespace
collapsing only) or the same metadata value (`meta:<value>`, e.g. a conversation id) share one
split. Items lacking the group value fall back to their own key.

`split_definition` is what every snapshot stores about this, so a version always says what its
held-out split meant, even if a later dataset uses another rule.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from reviewapp.content_keys import CONTENT_KEY_VERSION, NEAR_DUPLICATE_JACCARD

from .models import GROUP_BY_CONTENT, GROUP_BY_META_PREFIX, GROUP_BY_TEXT, Split

BUCKETS = 100
BUCKET_RULE = (
    "sha256('<salt>:<group key>'), first 15 hex digits as an integer mod 100: train below train_percent, "
    "dev below train_percent + dev_percent, else test"
)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# The characters PostgreSQL's [[:space:]] matches in a UTF-8 database, so both sides agree.
_SPACE_RUN = re.compile(r"[ \t\n\r\f\v]+")


def split_bucket(salt: str, key: str) -> int:
    """0–99 from the first 60 bits of sha256("<salt>:<key>")."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()
    return int(digest[:15], 16) % BUCKETS


def split_for(*, salt: str, key: str, train_percent: int, dev_percent: int) -> str:
    bucket = split_bucket(salt, key)
    if bucket < train_percent:
        return Split.TRAIN
    if bucket < train_percent + dev_percent:
        return Split.DEV
    return Split.TEST


def split_definition(*, salt: str, group_by: str, train_percent: int, dev_percent: int) -> dict[str, Any]:
    """What decided each row's split in a snapshot (stored on it, shown by the API and the pages)."""
    content = group_by == GROUP_BY_CONTENT
    return {
        "bucket": BUCKET_RULE,
        "salt": salt,
        "group_by": group_by,
        "content_key_version": CONTENT_KEY_VERSION if content else None,
        "near_duplicate_jaccard": NEAR_DUPLICATE_JACCARD if content else None,
        "train_percent": train_percent,
        "dev_percent": dev_percent,
        "test_percent": 100 - train_percent - dev_percent,
        # A late near duplicate can bridge two groups in different splits (content_keys.leaking_rows):
        # such held-out items are left out of the version, counted in stats["held_out_excluded"].
        "held_out_leaks": "excluded" if content else "not checked",
    }


def normalise_text(text: str) -> str:
    return _SPACE_RUN.sub(" ", text).strip(" ").translate(_ASCII_LOWER)


def group_key(
    *, group_by: str, item_id: int, text: str, metadata: dict[str, Any], content_group: str | None = None
) -> str:
    """The key an item is split by (the Python twin of `group_key_sql`).

    For 'content', `content_group` is the item's stored group (`ContentGroupKey.group_key`).
    """
    if group_by == GROUP_BY_CONTENT:
        if content_group:
            return "content:" + content_group
    elif group_by == GROUP_BY_TEXT:
        normal = normalise_text(text)
        if normal:
            return "text:" + hashlib.md5(normal.encode(), usedforsecurity=False).hexdigest()
    elif group_by.startswith(GROUP_BY_META_PREFIX):
        value = metadata.get(group_by[len(GROUP_BY_META_PREFIX) :])
        if value is not None and value != "":
            return "meta:" + (value if isinstance(value, str) else _jsonb_text(value))
    return f"item:{item_id}"


def _jsonb_text(value: Any) -> str:
    """What `metadata ->> 'field'` gives for a non-string JSON value (group values should be strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def group_key_sql(group_by: str) -> tuple[str, list[Any]]:
    """SQL for the group key of a content item aliased `i`, with its parameters."""
    item_key = "'item:' || i.id::text"
    if group_by == GROUP_BY_CONTENT:
        stored = "(SELECT k.group_key FROM exports_contentgroupkey k WHERE k.item_id = i.id AND k.key_version = %s)"
        return f"coalesce('content:' || {stored}, {item_key})", [CONTENT_KEY_VERSION]
    if group_by == GROUP_BY_TEXT:
        normal = r"""btrim(lower(regexp_replace(i.text, '[ \t\n\r\f\v]+', ' ', 'g') COLLATE "C"), ' ')"""
        return f"CASE WHEN {normal} = '' THEN {item_key} ELSE 'text:' || md5({normal}) END", []
    if group_by.startswith(GROUP_BY_META_PREFIX):
        field = group_by[len(GROUP_BY_META_PREFIX) :]
        value = "(i.metadata ->> %s)"
        return f"CASE WHEN coalesce({value}, '') = '' THEN {item_key} ELSE 'meta:' || {value} END", [field, field]
    return item_key, []


def bucket_sql(*, group_by: str, salt: str) -> tuple[str, list[Any]]:
    """SQL for `split_bucket` of a content item aliased `i`."""
    key, params = group_key_sql(group_by)
    digest = f"encode(sha256(convert_to(%s || ':' || ({key}), 'UTF8')), 'hex')"
    return f"mod(('x' || substr({digest}, 1, 15))::bit(60)::bigint, {BUCKETS})", [salt, *params]


def split_case_sql(bucket: str, *, train_percent: int, dev_percent: int) -> str:
    """SQL turning a bucket column into 'train' / 'dev' / 'test' (percentages are integers)."""
    train, train_dev = int(train_percent), int(train_percent) + int(dev_percent)
    return f"CASE WHEN {bucket} < {train} THEN 'train' WHEN {bucket} < {train_dev} THEN 'dev' ELSE 'test' END"
