"""Training data: the current gold labels of a policy, as arrays, with a stable held-out split.

The current gold label of (item, policy) is its highest version. A training set is pinned by a
*watermark*: the current labels among gold rows with id ≤ watermark. Gold ids only grow and rows
are immutable, so the same watermark always rebuilds the same set; its sha256 is stored too.
Splits follow a `SplitDefinition` (`splits.py`): by content group for new models, so that no
held-out item shares exact or near-duplicate text with train or dev.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from django.db import connection

from activelearning.evaluation import Task
from labeling.models import Policy

from .numeric import DEV, SPLIT_NAMES, TEST, TRAIN
from .splits import SplitAssignment, SplitDefinition, SplitUnavailable, assign_splits

SLICE_KEYS = ("route", "source", "modality", "language", "region")
_NEGATIVE_PREFIXES = ("not_", "no_", "non_", "non-", "not-")
# `GoldSet.skipped` key: dev/test rows left out because a near duplicate of their text is in another split.
HELD_OUT_NEAR_DUPLICATE = "held_out_near_duplicate_of_other_split"
_SPLITS: OrderedDict[str, SplitAssignment] = OrderedDict()


class TrainingDataError(ValueError):
    """Gold that cannot be trained on: too few labels, one class, no schema. Retrying will not help."""


@dataclass(frozen=True)
class LabelSpace:
    """How a policy's label schema becomes head targets and evaluation classes.

    Two labels: binary, one sigmoid for the positive (harmful) label. More: multiclass, one sigmoid
    per label (probabilities normalised over labels for evaluation). `allow_multiple`: multilabel.
    """

    task: Task
    values: tuple[str, ...]  # schema label values
    head_labels: tuple[str, ...]
    classes: tuple[str, ...]  # evaluation classes, in order
    positive_label: str

    @property
    def positive_index(self) -> int:
        return self.head_labels.index(self.positive_label)

    def eval_probs(self, head_probs: np.ndarray) -> np.ndarray:
        """Head probabilities (n, L) → the form `activelearning.evaluation` expects for the task."""
        if self.task == "binary":
            return head_probs[:, 0]
        if self.task == "multiclass":
            total = head_probs.sum(axis=1, keepdims=True)
            return head_probs / np.where(total > 0, total, 1.0)
        return head_probs


def label_space(policy: Policy, positive_label: str | None = None) -> LabelSpace:
    """The label space of the policy's version in force.

    The positive label is, unless given: the first label whose value does not start with "not_",
    "no_" or "non_" (schemas list the violation first: "violating", "spam", "toxic").
    """
    version = policy.current_version()
    if version is None:
        raise TrainingDataError(f"policy {policy.key} has no version in force")
    values = tuple(version.label_values)
    positive = positive_label or next((v for v in values if not v.startswith(_NEGATIVE_PREFIXES)), values[0])
    if positive not in values:
        raise TrainingDataError(f"positive label {positive!r} is not in the schema {values}")
    if version.label_schema.get("allow_multiple"):
        return LabelSpace("multilabel", values, values, values, positive)
    if len(values) == 2:
        negative = next(v for v in values if v != positive)
        return LabelSpace("binary", values, (positive,), (negative, positive), positive)
    return LabelSpace("multiclass", values, values, values, positive)


@dataclass
class GoldSet:
    """Current gold of a policy up to a watermark, aligned arrays (one row per item)."""

    item_ids: np.ndarray  # int64
    gold_ids: np.ndarray  # int64
    y_head: np.ndarray  # (n, L) float32 targets for `train_head`
    y_eval: np.ndarray  # (n,) class index, or (n, C) indicator for multilabel
    texts: list[str]
    embeddings: list[list[float] | None]
    slices: dict[str, list[str | None]]
    split: np.ndarray  # int8 TRAIN/DEV/TEST
    watermark: int
    sha256: str
    definition: SplitDefinition
    # Probability the item was sent to people (GoldLabel.sampling_propensity; 1 unless sampled); its
    # route is `slices["route"]`. Held-out figures weight the traffic stratum by its inverse.
    propensity: np.ndarray = field(default_factory=lambda: np.ones(0))
    skipped: dict[str, int] = field(default_factory=dict)

    def rows(self, split: int) -> np.ndarray:
        return np.flatnonzero(self.split == split)

    def subset(self, keep: np.ndarray) -> GoldSet:
        """The rows where `keep` is true (e.g. those the encoder could read), same watermark and hash."""
        rows = np.flatnonzero(keep)
        return GoldSet(
            item_ids=self.item_ids[rows],
            gold_ids=self.gold_ids[rows],
            y_head=self.y_head[rows],
            y_eval=self.y_eval[rows],
            texts=[self.texts[i] for i in rows],
            embeddings=[self.embeddings[i] for i in rows],
            slices={key: [values[i] for i in rows] for key, values in self.slices.items()},
            split=self.split[rows],
            watermark=self.watermark,
            sha256=self.sha256,
            definition=self.definition,
            propensity=self.propensity[rows],
            skipped={**self.skipped, "no_features": len(self.item_ids) - len(rows)},
        )

    def counts(self) -> dict[str, int]:
        return {name: int((self.split == code).sum()) for code, name in enumerate(SPLIT_NAMES)}


def gold_watermark(policy_id: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM labeling_goldlabel WHERE policy_id = %s", [policy_id])
        return int(cursor.fetchone()[0])


_GOLD_SQL = """
WITH current AS (
    SELECT DISTINCT ON (item_id) item_id, id, labels, route, min(id) OVER (PARTITION BY item_id) AS first_id,
           sampling_propensity
    FROM labeling_goldlabel
    WHERE policy_id = %(policy)s AND id <= %(watermark)s {extra}
    ORDER BY item_id, version DESC
)
SELECT c.item_id, c.id, c.labels, c.route, i.text, i.source, i.modality,
       i.metadata->>'language', i.metadata->>'region', {embedding}, i.external_id, c.first_id,
       c.sampling_propensity
FROM current c JOIN reviewapp_contentitem i ON i.id = c.item_id
ORDER BY c.item_id
"""


def _gold_rows(policy_id: int, watermark: int, *, with_embeddings: bool) -> list[tuple]:
    sql = _GOLD_SQL.format(extra="", embedding="i.embedding" if with_embeddings else "NULL")
    with connection.cursor() as cursor:
        cursor.execute(sql, {"policy": policy_id, "watermark": watermark})
        return cursor.fetchall()


def _split_rows(raw: Sequence[tuple], definition: SplitDefinition) -> SplitAssignment:
    """Every current gold row of the policy is split (labels outside the schema too): groups must
    not depend on which labels a version can read.

    Grouping 16,000 comments takes seconds and one round splits the same gold several times
    (training, evaluation, promotion, thresholds), so the last few results are kept per process,
    keyed by the definition and a digest of exactly what the split reads.
    """
    texts = [r[4] or "" for r in raw]
    identities = [f"{r[5]}\x1f{r[10]}" for r in raw]
    first_gold_ids = [r[11] for r in raw]
    digest = hashlib.sha256(repr(definition).encode())
    for row, text, identity in zip(raw, texts, identities, strict=True):
        digest.update(f"{row[0]}:{row[11]}:{identity}\x1e{text}\x1d".encode())
    key = digest.hexdigest()
    if key not in _SPLITS:
        _SPLITS[key] = assign_splits(definition, texts=texts, identities=identities, first_gold_ids=first_gold_ids)
        while len(_SPLITS) > 4:
            _SPLITS.popitem(last=False)
    _SPLITS.move_to_end(key)
    return _SPLITS[key]


def gold_set(
    *,
    policy: Policy,
    space: LabelSpace,
    watermark: int,
    with_embeddings: bool = False,
    only: int | None = None,
    split: SplitDefinition | None = None,
) -> GoldSet:
    """Load the current gold of `policy` (as of `watermark`) with item text, slices and splits.

    `split` is the definition to split by (default: the current one, for training a new model).
    Labels outside the label space (older schema versions, several labels on a single-label
    policy) are skipped and counted in `skipped`, and so are dev and test rows that have a near
    duplicate in another split (`HELD_OUT_NEAR_DUPLICATE`): they are neither tuned on nor
    measured on. `only` (TRAIN, DEV or TEST) loads just that split (computed over all the gold).
    """
    definition = split or SplitDefinition.current()
    raw = _gold_rows(policy.pk, watermark, with_embeddings=with_embeddings)
    assignment = _split_rows(raw, definition)
    index = {v: j for j, v in enumerate(space.values)}
    kept, targets = [], []
    skipped = {"label_not_in_schema": 0, HELD_OUT_NEAR_DUPLICATE: 0}
    for row_number, row in enumerate(raw):
        if only is not None and assignment.split[row_number] != only:
            continue
        if assignment.leaking[row_number]:
            skipped[HELD_OUT_NEAR_DUPLICATE] += 1
            continue
        labels = json.loads(row[2]) if isinstance(row[2], str) else row[2]  # Django reads jsonb as text
        labels = labels if isinstance(labels, list) else []
        indices = [index[v] for v in labels if v in index]
        if not indices or len(indices) != len(labels) or (space.task != "multilabel" and len(indices) != 1):
            skipped["label_not_in_schema"] += 1
            continue
        kept.append(row_number)
        targets.append(indices)
    return _assemble(raw, kept, targets, assignment.split, space, watermark, skipped, definition)


def held_out_unseen_by(
    *, policy: Policy, watermark: int, current: SplitDefinition, earlier: SplitDefinition, earlier_watermark: int
) -> tuple[set[int], bool]:
    """Ids of items in the test split under `current` that a model trained under `earlier` on gold
    up to `earlier_watermark` never trained or tuned on, nor on an exact or near duplicate of them.

    The earlier model's train and dev items are recomputed from its definition; when that cannot
    be done (`SplitUnavailable`), every item it had gold for counts as seen. Returns (item ids,
    whether the earlier split was recomputed).
    """
    raw = _gold_rows(policy.pk, watermark, with_embeddings=False)
    now = _split_rows(raw, current)
    known = np.flatnonzero(np.asarray([r[11] for r in raw], dtype=np.int64) <= earlier_watermark)
    seen = np.zeros(len(raw), dtype=bool)
    try:
        then = _split_rows([raw[i] for i in known], earlier)
        seen[known[then.split != TEST]] = True
        recomputed = True
    except SplitUnavailable:
        seen[known] = True
        recomputed = False
    seen_keys = {now.keys[i] for i in np.flatnonzero(seen)}
    effective = np.where([key in seen_keys for key in now.keys], TRAIN, now.split).astype(np.int8)
    usable = (now.split == TEST) & (effective == TEST) & ~now.leaking & ~now.leaking_under(effective, held_out=(TEST,))
    return {int(raw[i][0]) for i in np.flatnonzero(usable)}, recomputed


def _assemble(
    raw: list[tuple],
    kept: list[int],
    targets: list[list[int]],
    split: np.ndarray,
    space: LabelSpace,
    watermark: int,
    skipped: dict[str, int],
    definition: SplitDefinition,
) -> GoldSet:
    n = len(kept)
    indicator = np.zeros((n, len(space.values)), dtype=np.float32)
    for row, indices in enumerate(targets):
        indicator[row, indices] = 1.0
    if space.task == "binary":
        y_eval = indicator[:, space.values.index(space.positive_label)].astype(np.int64)
        y_head = y_eval[:, None].astype(np.float32)
    elif space.task == "multiclass":
        y_eval = indicator.argmax(axis=1).astype(np.int64)
        y_head = indicator
    else:
        y_eval = indicator.astype(np.int64)
        y_head = indicator
    rows = [raw[i] for i in kept]
    digest = hashlib.sha256()
    for r in rows:
        digest.update(f"{r[0]}:{r[1]}\n".encode())
    return GoldSet(
        item_ids=np.asarray([r[0] for r in rows], dtype=np.int64),
        gold_ids=np.asarray([r[1] for r in rows], dtype=np.int64),
        y_head=y_head,
        y_eval=y_eval,
        texts=[r[4] or "" for r in rows],
        embeddings=[r[9] for r in rows],
        slices={
            key: [r[column] or None for r in rows] for key, column in zip(SLICE_KEYS, (3, 5, 6, 7, 8), strict=True)
        },
        split=split[kept] if kept else np.zeros(0, dtype=np.int8),
        watermark=watermark,
        sha256=digest.hexdigest(),
        definition=definition,
        propensity=np.asarray([r[12] for r in rows], dtype=np.float64),
        skipped=skipped,
    )


def check_trainable(gold: GoldSet, space: LabelSpace, *, minimum: int) -> None:
    """Raise TrainingDataError, saying what is missing, unless the set can train and be evaluated."""
    counts = gold.counts()
    if len(gold.item_ids) < minimum:
        raise TrainingDataError(f"{len(gold.item_ids)} usable gold labels; a round needs at least {minimum}")
    train = gold.y_eval[gold.split == TRAIN]
    present = {int(c) for c in np.unique(train)} if train.ndim == 1 else set(np.flatnonzero(train.sum(0)).tolist())
    if len(present) < 2:
        raise TrainingDataError(f"the training split holds only {sorted(present)} of classes {space.classes}")
    if counts["test"] == 0 or counts["dev"] == 0:
        raise TrainingDataError(f"no held-out gold (split {counts}); add labels before training")


def slice_values(gold: GoldSet, rows: Sequence[int] | np.ndarray) -> dict[str, list[str | None]]:
    return {key: [values[i] for i in rows] for key, values in gold.slices.items()}


__all__ = [
    "DEV",
    "HELD_OUT_NEAR_DUPLICATE",
    "TEST",
    "TRAIN",
    "GoldSet",
    "LabelSpace",
    "SplitDefinition",
    "TrainingDataError",
    "gold_set",
    "held_out_unseen_by",
    "label_space",
]
