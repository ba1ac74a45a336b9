"""Which gold items a model trains on, tunes on and is measured on: the split definition and its rules.

A held-out figure means something only together with the rule that chose the held-out items, so
every `ModelVersion` stores its `SplitDefinition` (rule, salt, content-key version, dev and test
fractions) and every split of its gold is recomputed from that, never from today's settings.

Rules:
- `content-group-sha256` (current): rows are grouped by content (`reviewapp.content_keys`: equal
  normalised text or near-duplicate text, items without text by their upstream identity) in the
  order each item first received gold, and the split is sha256(salt + group key). Exact and near
  duplicates fall on one side, and a later label never moves an earlier item. Held-out rows that
  still have a near duplicate in another split (a late item bridging two groups) are marked
  `leaking`, and callers leave them out of every held-out use.
- `item-id-sha256` (legacy, models registered before content groups): sha256(salt + "source␟
  external_id") per item. Duplicate texts cross it; it is kept only to recompute what older
  models trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings

from reviewapp.content_keys import CONTENT_KEY_VERSION, ContentGroups, content_groups, leaking_rows

from .numeric import DEV, TEST, split_codes

if TYPE_CHECKING:
    from ..models import ModelVersion

CONTENT_GROUP_RULE = "content-group-sha256"
ITEM_ID_RULE = "item-id-sha256"
RULES = (CONTENT_GROUP_RULE, ITEM_ID_RULE)


class SplitUnavailable(ValueError):
    """A stored split definition this code cannot recompute (another content-key version or rule)."""


@dataclass(frozen=True)
class SplitDefinition:
    """Everything that decides which items are train, dev and test."""

    rule: str
    salt: str
    content_key_version: str  # "" for the item-id rule
    dev_fraction: float
    test_fraction: float

    @classmethod
    def current(cls) -> SplitDefinition:
        """The definition new models are trained with: content groups, today's salt and fractions."""
        return cls(
            CONTENT_GROUP_RULE,
            settings.AL_SPLIT_SALT,
            CONTENT_KEY_VERSION,
            settings.AL_DEV_FRACTION,
            settings.AL_TEST_FRACTION,
        )

    @classmethod
    def of(cls, version: ModelVersion) -> SplitDefinition:
        """The definition a version was trained with (the migration filled older rows with the legacy rule)."""
        return cls(
            version.split_rule,
            version.split_salt,
            version.split_content_key_version,
            version.split_dev_fraction,
            version.split_test_fraction,
        )

    def model_fields(self) -> dict[str, str | float]:
        """The `ModelVersion` fields that store this definition."""
        return {f"split_{name}": value for name, value in asdict(self).items()}

    def as_dict(self) -> dict[str, str | float]:
        return asdict(self)

    def differences(self, other: SplitDefinition) -> list[str]:
        """Names of the parts that differ ("rule", "salt", ...), empty when the definitions are equal."""
        mine, theirs = asdict(self), asdict(other)
        return [name for name in mine if mine[name] != theirs[name]]

    def describe(self) -> str:
        key = f", content key {self.content_key_version}" if self.content_key_version else ""
        return f"{self.rule} (salt {self.salt!r}{key}; dev {self.dev_fraction:g}, test {self.test_fraction:g})"


@dataclass(frozen=True)
class SplitAssignment:
    """Per input row: split code, whether a held-out row leaks, and the key that was hashed."""

    split: np.ndarray  # int8 TRAIN / DEV / TEST
    leaking: np.ndarray  # bool: held-out with a near duplicate in another split (always False for item ids)
    keys: list[str]  # content group key (content rule) or upstream identity (item-id rule)
    groups: ContentGroups | None = None  # content rule: the groups, rows in `order`
    order: np.ndarray | None = None  # content rule: input rows in stable (first gold) order

    def leaking_under(self, split: np.ndarray, *, held_out: Sequence[int]) -> np.ndarray:
        """Rows held out under another split of the same rows that have a near duplicate across it."""
        if self.groups is None or self.order is None:
            return np.zeros(len(split), dtype=bool)
        out = np.empty(len(split), dtype=bool)
        out[self.order] = leaking_rows(self.groups, np.asarray(split)[self.order], held_out=held_out)
        return out


def assign_splits(
    definition: SplitDefinition, *, texts: Sequence[str], identities: Sequence[str], first_gold_ids: Sequence[int]
) -> SplitAssignment:
    """Split rows under `definition`; rows may come in any order, `first_gold_ids` gives the stable one.

    `identities` are "source\\x1fexternal_id"; `first_gold_ids` the id of each item's first gold
    label for the policy (gold ids only grow, so that order only ever grows at the end).
    """
    fractions = {"dev": definition.dev_fraction, "test": definition.test_fraction}
    if definition.rule == ITEM_ID_RULE:
        split = split_codes(identities, salt=definition.salt, **fractions)
        return SplitAssignment(split, np.zeros(len(split), dtype=bool), list(identities))
    if definition.rule != CONTENT_GROUP_RULE:
        raise SplitUnavailable(f"unknown split rule {definition.rule!r} (known: {', '.join(RULES)})")
    if definition.content_key_version != CONTENT_KEY_VERSION:
        raise SplitUnavailable(
            f"content key version {definition.content_key_version!r} cannot be recomputed "
            f"(this code groups by {CONTENT_KEY_VERSION!r})"
        )
    order = np.argsort(np.asarray(first_gold_ids, dtype=np.int64), kind="stable")
    groups = content_groups([texts[i] for i in order], fallback_keys=[identities[i] for i in order])
    ordered_split = split_codes(groups.keys, salt=definition.salt, **fractions)
    ordered_leaking = leaking_rows(groups, ordered_split, held_out=(DEV, TEST))
    split = np.empty(len(order), dtype=np.int8)
    leaking = np.empty(len(order), dtype=bool)
    keys = [""] * len(order)
    split[order], leaking[order] = ordered_split, ordered_leaking
    for position, row in enumerate(order):
        keys[row] = groups.keys[position]
    return SplitAssignment(split, leaking, keys, groups, order)
