"""Classifier heads in torch: multi-label (one sigmoid per policy), trained deterministically on CPU.

Contract, shared by every function here:
- features are either a dense float32 array of shape (n, d) (frozen or upstream embeddings) or
  `Bags` of hashed n-gram ids (the embedding table is then part of the head and trained too);
- targets are a float array of shape (n, L) holding 1.0, 0.0 or NaN. NaN means "not labelled
  for this policy" and is left out of the loss: a reviewer who judged an item for one policy said
  nothing about the others;
- probabilities are sigmoid outputs of shape (n, L); "calibrated" means divided by the per-label
  temperature fitted on the dev split.

Training: AdamW (no weight decay on the n-gram table), BCE with per-label `pos_weight` for rare harms,
early stopping on dev loss with the best weights restored. The seed fixes initialisation, batch
order and dropout; the caller's global torch RNG state is left untouched.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

# Defined without torch in head_inputs (web processes validate HeadConfig); code that trains imports them from here.
from activelearning.head_inputs import Bags, ClassWeighting, Features, HeadConfig, HeadError

PREDICT_CHUNK = 8192  # rows per forward pass at inference: bounds memory on big pools


@dataclass(frozen=True)
class InputSpec:
    """What the head reads: a dense width, or a hashed n-gram table of `num_buckets` rows."""

    input_dim: int
    num_buckets: int = 0  # 0 = dense features


@dataclass
class TrainingHistory:
    epochs_run: int = 0
    best_epoch: int = 0
    best_dev_loss: float = math.inf
    stopped_early: bool = False
    train_loss: list[float] = field(default_factory=list)
    dev_loss: list[float] = field(default_factory=list)


class _Net(nn.Module):
    shift: torch.Tensor  # buffers of dense-input nets
    scale: torch.Tensor

    def __init__(self, spec: InputSpec, n_labels: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.bag = nn.EmbeddingBag(spec.num_buckets, spec.input_dim, mode="mean") if spec.num_buckets else None
        if self.bag is not None:
            # fastText's init: small uniform rows, so the mean of hundreds of n-grams starts near 0.
            nn.init.uniform_(self.bag.weight, -1.0 / spec.input_dim, 1.0 / spec.input_dim)
        else:
            # Per-dimension standardisation, fitted on the training features (see `_standardise`).
            self.register_buffer("shift", torch.zeros(spec.input_dim))
            self.register_buffer("scale", torch.ones(spec.input_dim))
        self.drop_in = nn.Dropout(dropout)
        self.hidden = nn.Linear(spec.input_dim, hidden) if hidden else None
        self.drop_out = nn.Dropout(dropout)
        self.out = nn.Linear(hidden or spec.input_dim, n_labels)

    def features(self, x: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        """Penultimate activations (n, h): the (pooled) input itself for a linear head."""
        x = self.bag(x, offsets) if self.bag is not None else (x - self.shift) / self.scale
        if self.hidden is None:
            return x  # one dropout (before `out`) is enough for a linear head
        return torch.relu(self.hidden(self.drop_in(x)))

    def forward(self, x: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(self.drop_out(self.features(x, offsets)))


def _tensors(features: Features, rows: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(features, Bags):
        part = features if rows is None else features.take(rows)
        return torch.from_numpy(part.ids), torch.from_numpy(part.offsets[:-1])
    part_x = features if rows is None else features[rows]
    return torch.from_numpy(np.ascontiguousarray(part_x, dtype=np.float32)), None


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Run with `threads` intra-op threads, restoring the previous count.

    Training steps are small ops (a 256-row batch); OpenMP fork/join dominates them, and on a
    busy 2-core machine a second thread made a step 10x slower, not faster (measured). One
    thread also leaves the other core to a second worker.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _chunks(n: int, size: int = PREDICT_CHUNK) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


class TrainedHead:
    """A trained network with its labels, hyperparameters and fitted per-label temperature."""

    def __init__(
        self,
        net: _Net,
        *,
        labels: tuple[str, ...],
        spec: InputSpec,
        config: HeadConfig,
        temperature: np.ndarray,
        history: TrainingHistory,
    ) -> None:
        self.net = net.eval()
        self.labels = labels
        self.spec = spec
        self.config = config
        self.temperature = np.asarray(temperature, dtype=np.float64)
        self.history = history

    def _run(self, features: Features, fn: str) -> np.ndarray:
        outputs = []
        # Same thread count as training: on a shared 2-core box, 2 OpenMP threads made MC-dropout
        # scoring several times slower whenever another process held a core.
        with torch.no_grad(), _torch_threads(self.config.threads):
            for rows in _chunks(len(features)):
                x, offsets = _tensors(features, rows)
                outputs.append(getattr(self.net, fn)(x, offsets).numpy())
        width = len(self.labels) if fn == "forward" else self.net.out.in_features
        return np.concatenate(outputs) if outputs else np.zeros((0, width), dtype=np.float32)

    def logits(self, features: Features) -> np.ndarray:
        """Uncalibrated logits, (n, L) float32, dropout off."""
        self.net.eval()
        return self._run(features, "forward")

    def predict_proba(self, features: Features, *, calibrated: bool = True) -> np.ndarray:
        """Sigmoid probabilities (n, L) float64; divided by the temperature when `calibrated`."""
        logits = self.logits(features).astype(np.float64)
        return _sigmoid(logits / self.temperature if calibrated else logits)

    def embed(self, features: Features) -> np.ndarray:
        """Penultimate activations (n, h), dropout off: the space BADGE's gradient embedding uses."""
        self.net.eval()
        return self._run(features, "features")

    def mc_dropout_proba(self, features: Features, *, samples: int = 20, seed: int = 0) -> np.ndarray:
        """(samples, n, L) calibrated probabilities with dropout left on (Gal & Ghahramani, 2016).

        Deterministic for a seed; the global RNG is restored afterwards.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net.train()  # only Dropout reacts to train mode in this network
            try:
                draws = [self._run(features, "forward") for _ in range(samples)]
            finally:
                self.net.eval()
        return _sigmoid(np.stack(draws).astype(np.float64) / self.temperature)

    def payload(self) -> dict[str, Any]:
        """Plain data + tensors (loadable with `torch.load(weights_only=True)`)."""
        return {
            "labels": list(self.labels),
            "input_spec": asdict(self.spec),
            "head_config": asdict(self.config),
            "temperature": self.temperature.tolist(),
            "history": asdict(self.history),
            "state_dict": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TrainedHead:
        spec = InputSpec(**payload["input_spec"])
        config = HeadConfig(**payload["head_config"])
        labels = tuple(payload["labels"])
        net = _Net(spec, len(labels), config.hidden, config.dropout)
        net.load_state_dict(payload["state_dict"])
        history = TrainingHistory(**payload["history"])
        return cls(
            net,
            labels=labels,
            spec=spec,
            config=config,
            temperature=np.asarray(payload["temperature"]),
            history=history,
        )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + exp(-x))


def pos_weights(y: np.ndarray, weighting: ClassWeighting, cap: float) -> np.ndarray:
    """Per-label BCE pos_weight from observed targets (NaN ignored), clipped to [1/cap, cap].

    "balanced" weighs positives by neg/pos so both classes carry equal total loss; "sqrt" goes
    half-way (on a log scale), which costs less calibration. A label with no positives or no
    negatives gets 1: there is nothing to balance.
    """
    if weighting not in ("none", "balanced", "sqrt"):
        raise HeadError(f"unknown class weighting {weighting!r}")
    positives = np.nansum(y, axis=0)
    negatives = np.sum(~np.isnan(y), axis=0) - positives
    weight = np.ones(y.shape[1])
    if weighting != "none":
        both = (positives > 0) & (negatives > 0)
        ratio = np.where(both, negatives / np.maximum(positives, 1), 1.0)
        weight = ratio if weighting == "balanced" else np.sqrt(ratio)
    return np.clip(weight, 1.0 / cap, cap)


def _check_inputs(x: Features, y: np.ndarray, n_labels: int, name: str) -> None:
    if y.ndim != 2 or y.shape[1] != n_labels or len(x) != len(y):
        raise HeadError(f"{name}: features ({len(x)} rows) and targets {y.shape} disagree with {n_labels} labels")
    observed = y[~np.isnan(y)]
    if not np.isin(observed, (0.0, 1.0)).all():
        raise HeadError(f"{name}: targets must be 0, 1 or NaN")


def _input_spec(x: Features, config: HeadConfig) -> InputSpec:
    if isinstance(x, Bags):
        return InputSpec(input_dim=config.embedding_dim, num_buckets=x.num_buckets)
    if x.ndim != 2:
        raise HeadError(f"dense features must be 2-d, got shape {x.shape}")
    return InputSpec(input_dim=x.shape[1])


def _masked_loss(logits: torch.Tensor, y: torch.Tensor, pos_weight: torch.Tensor | None) -> torch.Tensor:
    """Mean BCE over observed (non-NaN) targets; 0 when nothing is observed."""
    mask = ~torch.isnan(y)
    loss = nn.functional.binary_cross_entropy_with_logits(
        logits, torch.nan_to_num(y), pos_weight=pos_weight, reduction="none"
    )
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def _optimizer(net: _Net, config: HeadConfig) -> torch.optim.Optimizer:
    # Dense gradients for the n-gram table: SparseAdam must coalesce ~100k duplicate row ids per
    # batch, which measured 3-10x slower than a dense Adam step on a table of this size.
    table = [p for name, p in net.named_parameters() if name.startswith("bag.")]
    rest = [p for name, p in net.named_parameters() if not name.startswith("bag.")]
    groups: list[dict[str, Any]] = [{"params": rest, "lr": config.lr, "weight_decay": config.weight_decay}]
    if table:
        # No decay on the table: rows of n-grams absent from a batch would shrink for nothing.
        groups.append({"params": table, "lr": config.embedding_lr, "weight_decay": 0.0})
    return torch.optim.AdamW(groups)


def _dev_loss(net: _Net, x: Features, y: torch.Tensor, pos_weight: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(*_tensors(x, rows)) for rows in _chunks(len(x))])
    net.train()
    return float(_masked_loss(logits, y, pos_weight))


def train_head(
    train_x: Features,
    train_y: np.ndarray,
    dev_x: Features | None,
    dev_y: np.ndarray | None,
    *,
    labels: tuple[str, ...] | list[str],
    config: HeadConfig | None = None,
) -> TrainedHead:
    """Train a head; early-stop on dev loss and fit the temperature on dev (both skipped without dev).

    `train_y`/`dev_y`: (n, L) float with 1/0/NaN. Deterministic given `config.seed` on a given
    machine and thread count. Returns the weights of the best dev epoch.
    """
    config = config or HeadConfig()
    labels = tuple(labels)
    train_y = np.asarray(train_y, dtype=np.float32)
    _check_inputs(train_x, train_y, len(labels), "train")
    has_dev = dev_x is not None and dev_y is not None and len(dev_x) > 0
    if has_dev:
        dev_y = np.asarray(dev_y, dtype=np.float32)
        _check_inputs(dev_x, dev_y, len(labels), "dev")  # type: ignore[arg-type]
    spec = _input_spec(train_x, config)
    weight = torch.tensor(pos_weights(train_y, config.class_weighting, config.max_pos_weight), dtype=torch.float32)
    with torch.random.fork_rng(devices=[]), _torch_threads(config.threads):
        torch.manual_seed(config.seed)
        net = _Net(spec, len(labels), config.hidden, config.dropout)
        if config.standardise and not isinstance(train_x, Bags):
            _standardise(net, train_x)
        dev = (dev_x, dev_y) if has_dev and dev_x is not None and dev_y is not None else None
        history = _fit(net, train_x, train_y, dev, weight, config)
    temperature = np.ones(len(labels))
    if has_dev:
        net.eval()
        with torch.no_grad():
            dev_logits = torch.cat([net(*_tensors(dev_x, rows)) for rows in _chunks(len(dev_x))])  # type: ignore[arg-type]
        temperature = fit_temperature(dev_logits.numpy(), dev_y)  # type: ignore[arg-type]
    return TrainedHead(net, labels=labels, spec=spec, config=config, temperature=temperature, history=history)


def _standardise(net: _Net, x: np.ndarray) -> None:
    """Set the input shift/scale buffers to the training features' mean and standard deviation.

    For upstream vectors on arbitrary scales. Off by default: on unit-norm MiniLM embeddings it
    amplified low-variance noise dimensions and hurt (ConvAbuse full-data macro-F1 0.845 → 0.828,
    and random-sampling learning curves rose more slowly). The buffers are part of the state
    dict, so artifacts carry them.
    """
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    net.shift.copy_(torch.from_numpy(mean))
    net.scale.copy_(torch.from_numpy(np.maximum(std, 1e-6)))


def _fit(
    net: _Net,
    train_x: Features,
    train_y: np.ndarray,
    dev: tuple[Features, np.ndarray] | None,
    pos_weight: torch.Tensor,
    config: HeadConfig,
) -> TrainingHistory:
    n = len(train_x)
    batch = max(1, min(config.batch_size, math.ceil(n / config.min_steps_per_epoch)))
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = _optimizer(net, config)
    y_all = torch.from_numpy(train_y)
    dev_y = torch.from_numpy(dev[1]) if dev is not None else None
    history = TrainingHistory()
    best_state = None
    net.train()
    for epoch in range(1, config.max_epochs + 1):
        order = torch.randperm(n, generator=generator).numpy()
        total = 0.0
        for start in range(0, n, batch):
            rows = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = _masked_loss(net(*_tensors(train_x, rows)), y_all[rows], pos_weight)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
        history.epochs_run = epoch
        history.train_loss.append(total / max(n, 1))
        if dev is None:
            continue
        dev_loss = _dev_loss(net, dev[0], dev_y, pos_weight)  # type: ignore[arg-type]
        history.dev_loss.append(dev_loss)
        if dev_loss < history.best_dev_loss - 1e-6:
            history.best_dev_loss, history.best_epoch = dev_loss, epoch
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        elif epoch - history.best_epoch >= config.patience:
            history.stopped_early = True
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        history.best_epoch = history.epochs_run
    net.eval()
    return history


def fit_temperature(logits: np.ndarray, y: np.ndarray, *, bounds: tuple[float, float] = (0.05, 20.0)) -> np.ndarray:
    """Per-label temperature T (L,) minimising the unweighted BCE of sigmoid(logits / T) on dev.

    The loss is convex in 1/T, so a few L-BFGS steps find the optimum. Labels whose dev targets
    lack a positive or a negative keep T = 1: with one class present the optimum is degenerate.
    Dividing by T never changes which side of 0.5 a prediction falls on, so decisions at the
    default threshold are unchanged; only confidence moves.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    temperature = np.ones(logits.shape[1])
    for j in range(logits.shape[1]):
        seen = ~np.isnan(y[:, j])
        z, t = torch.from_numpy(logits[seen, j]), torch.from_numpy(y[seen, j])
        if t.numel() == 0 or t.min() == t.max():
            continue
        beta = _fit_inverse_temperature(z, t)
        temperature[j] = float(np.clip(1.0 / beta, *bounds)) if beta > 0 else bounds[1]
    return temperature


def _fit_inverse_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """β = 1/T minimising BCE(sigmoid(β · logits), targets), by L-BFGS from β = 1."""
    inverse = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([inverse], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(logits * inverse, targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(inverse.detach())
