"""What a classifier head is configured with and fed, apart from the torch code that trains it.

`HeadConfig` (hyper-parameters), `Bags` (hashed n-gram input) and the `Features` type are plain
dataclasses over numpy with no torch import, so code that only validates a head's settings or
builds its input (the round form and API in web processes, the feature services) does not load
torch; `activelearning.heads` trains and predicts with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

ClassWeighting = Literal["none", "balanced", "sqrt"]


class HeadError(ValueError):
    """Inconsistent training input: shapes that disagree, unknown options."""


@dataclass(frozen=True)
class Bags:
    """Variable-length bags of int64 ids in [0, num_buckets), packed as CSR (ids + offsets)."""

    ids: np.ndarray  # (total,) int64
    offsets: np.ndarray  # (n + 1,) int64, offsets[0] == 0, offsets[-1] == total
    num_buckets: int

    @classmethod
    def from_list(cls, bags: list[np.ndarray], num_buckets: int) -> Bags:
        lengths = np.fromiter((len(b) for b in bags), dtype=np.int64, count=len(bags))
        offsets = np.zeros(len(bags) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.concatenate(bags).astype(np.int64) if bags else np.zeros(0, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= num_buckets):
            raise HeadError(f"bag ids must lie in [0, {num_buckets})")
        return cls(ids, offsets, num_buckets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def take(self, rows: np.ndarray) -> Bags:
        """The bags at `rows`, in that order (vectorised gather, no Python loop per bag)."""
        starts, lengths = self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        return Bags(self.ids[np.repeat(starts, lengths) + within], offsets, self.num_buckets)


Features = np.ndarray | Bags


@dataclass(frozen=True)
class HeadConfig:
    hidden: int = 256  # 0 = linear head (logistic regression per policy)
    dropout: float = 0.2  # on the input and before the output layer; also drives MC dropout
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    min_steps_per_epoch: int = 10  # small label sets get smaller batches, not a handful of steps
    max_epochs: int = 100
    patience: int = 5  # epochs without a dev-loss improvement before stopping
    class_weighting: ClassWeighting = "balanced"  # pos_weight = (neg/pos) or its sqrt, per policy
    max_pos_weight: float = 50.0  # cap, so one positive in a thousand does not dominate the loss
    embedding_dim: int = 64  # width of the n-gram table (Bags input only)
    embedding_lr: float = 2e-2  # table rows see few updates each, so they move faster
    seed: int = 0
    threads: int = 1  # torch intra-op threads while training; see `_torch_threads`
    standardise: bool = False  # dense inputs: zero mean, unit variance per dimension (see `_standardise`)
