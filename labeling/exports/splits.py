"""Stable train/dev/test splits: a hash of (dataset salt, group key), never a random draw.

An item's split depends only on its dataset's salt and shares and on its group key, all fixed
when the dataset is created, so a later version that adds items never moves an existing one.
Snapshots assign splits in SQL (`split_sql`, set-based, inside `INSERT … SELECT`); `split_for`
is the same function in Python, and the tests hold the two to each other.

Group keys: each item alone (`item:<id>`), or, when the dataset names a group key, items with
the same normalised text (`text:<md5>`: exact duplicates after ASCII case folding and whitespace
collapsing, no fuzzy near-duplicate detection) or the same metadata value (`meta:<value>`, e.g.
a conversation or near-duplicate cluster id assigned upstream) share one split. Items lacking
the group value fall back to their own key.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from .models import GROUP_BY_META_PREFIX, GROUP_BY_TEXT, Split

BUCKETS = 100
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


def normalise_text(text: str) -> str:
    return _SPACE_RUN.sub(" ", text).strip(" ").translate(_ASCII_LOWER)


def group_key(*, group_by: str, item_id: int, text: str, metadata: dict[str, Any]) -> str:
    """The key an item is split by (the Python twin of `group_key_sql`)."""
    if group_by == GROUP_BY_TEXT:
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
