"""What a served model reads and answers, shared by the predict endpoint and model bundles.

`check_items` validates untrusted items (`{"text": ...}` or `{"embedding": [...]}`) for an
encoder and says which item and field is wrong; `model_features` turns validated items into the
head's input; `predictions` turns calibrated probabilities into per-item answers. The server's
`POST /api/v1/models/{policy}/predict` and `activelearning.bundle.BundledModel` call these same
functions, so both score the same float32 input with the same head.

Plain Python and numpy, no torch (a web process validates with it before a model is loaded) and
no Django.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from activelearning.encoders import (
    MINILM_DIM,
    HashedNgramEncoder,
    MiniLMEncoder,
    PrecomputedEncoder,
)
from activelearning.head_inputs import Bags, Features

MAX_BATCH = 1000  # items per predict call
MAX_TEXT_CHARS = 20_000  # characters per text; the hashed encoder reads the first 512 tokens anyway
MAX_ID_CHARS = 200

AnyEncoder = HashedNgramEncoder | MiniLMEncoder | PrecomputedEncoder


class ItemsError(ValueError):
    """Items a model cannot score: the message names the item and the field."""


# --- what a model reads -----------------------------------------------------------------------


def input_schema(encoder: Mapping[str, Any]) -> dict[str, Any]:
    """What an item must carry for a model with this encoder config (stored in config.json)."""
    text = {
        "type": "string",
        "max_chars": MAX_TEXT_CHARS,
        "rules": "non-empty after trimming whitespace; valid Unicode (no lone surrogates); no NUL character",
    }
    kind = encoder.get("kind")
    schema: dict[str, Any] = {"max_batch": MAX_BATCH, "item_fields": {"id": f"optional string, ≤ {MAX_ID_CHARS}"}}
    if kind == "hashed_ngram":
        return {**schema, "accepts": ["text"], "text": {**text, "max_tokens_read": encoder.get("max_tokens")}}
    embedding = {"type": "array of finite numbers", "dim": int(encoder.get("dim", MINILM_DIM))}
    if kind == "minilm":
        embedding["meaning"] = "the all-MiniLM-L6-v2 vector of the text (unit L2 norm), used as given"
        return {**schema, "accepts": ["text", "embedding"], "text": text, "embedding": embedding}
    embedding["meaning"] = f"the upstream vector of {encoder.get('encoder_id')}"
    embedding["normalized_by_model"] = bool(encoder.get("normalize"))
    return {**schema, "accepts": ["embedding"], "embedding": embedding}


@dataclass
class Items:
    """Validated items: per row a text or a float32 vector (exactly one), and the caller's ids."""

    texts: list[str | None]
    vectors: list[np.ndarray | None]
    ids: list[str | None]

    def __len__(self) -> int:
        return len(self.texts)


def check_items(items: Any, encoder: AnyEncoder) -> Items:
    """Validate untrusted items (`[{"text": ...} | {"embedding": [...]}, ...]`) for `encoder`.

    Raises ItemsError with a message naming the first bad item and field.
    """
    if not isinstance(items, list) or not items:
        raise ItemsError("items: a non-empty list of objects is required")
    if len(items) > MAX_BATCH:
        raise ItemsError(f"items: at most {MAX_BATCH} items per call, got {len(items)}; split the batch")
    accepts = _accepts(encoder)
    out = Items([], [], [])
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            raise ItemsError(f"{where}: an object with 'text' or 'embedding' is required")
        unknown = sorted(set(item) - {"text", "embedding", "id"})
        if unknown:
            raise ItemsError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
        given = [name for name in ("text", "embedding") if name in item]
        if len(given) != 1:
            raise ItemsError(f"{where}: give exactly one of {' or '.join(repr(a) for a in accepts)}")
        if given[0] not in accepts:
            raise ItemsError(f"{where}.{given[0]}: this model reads {' or '.join(accepts)} only")
        out.ids.append(_check_id(item.get("id"), where))
        if given[0] == "text":
            out.texts.append(_check_text(item["text"], f"{where}.text"))
            out.vectors.append(None)
        else:
            out.texts.append(None)
            out.vectors.append(_check_vector(item["embedding"], encoder.dim, f"{where}.embedding"))
    return out


def _accepts(encoder: AnyEncoder) -> tuple[str, ...]:
    if isinstance(encoder, HashedNgramEncoder):
        return ("text",)
    if isinstance(encoder, MiniLMEncoder):
        return ("text", "embedding")
    return ("embedding",)


def _check_id(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS:
        raise ItemsError(f"{where}.id: a string of at most {MAX_ID_CHARS} characters")
    return value


def _check_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ItemsError(f"{where}: must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT_CHARS:
        raise ItemsError(f"{where}: {len(value)} characters; at most {MAX_TEXT_CHARS} are accepted")
    if not value.strip():
        raise ItemsError(f"{where}: empty or only whitespace; there is nothing to score")
    if "\x00" in value:
        raise ItemsError(f"{where}: contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ItemsError(f"{where}: not valid Unicode (a lone surrogate at position {error.start})") from None
    return value


def _check_vector(value: Any, dim: int, where: str) -> np.ndarray:
    if not isinstance(value, list):
        raise ItemsError(f"{where}: must be an array of {dim} numbers")
    if len(value) != dim:
        raise ItemsError(f"{where}: {len(value)} numbers; this model reads {dim}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ItemsError(f"{where}: every entry must be a number")
    try:
        vector = np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise ItemsError(f"{where}: a number beyond the float range") from None
    if not np.isfinite(vector).all():
        raise ItemsError(f"{where}: NaN or infinite values")
    if np.abs(vector).max(initial=0.0) > np.finfo(np.float32).max:
        raise ItemsError(f"{where}: values beyond the float32 range")
    return vector.astype(np.float32)


def model_features(
    encoder: AnyEncoder, items: Items, embed_texts: Callable[[list[str]], np.ndarray] | None = None
) -> Features:
    """The head's input for validated items, in their order.

    Hashed n-grams are computed from the texts. MiniLM rows come from `embed_texts` for texts (the
    server passes its embedding cache, a bundle the encoder itself) and as given for embeddings.
    Upstream vectors go through the encoder's own validation and normalisation.
    """
    if isinstance(encoder, HashedNgramEncoder):
        texts = [t for t in items.texts if t is not None]
        return Bags.from_list(encoder.bags(texts), encoder.hash_config.num_buckets)
    if isinstance(encoder, PrecomputedEncoder):
        return encoder.encode_vectors(np.stack([v for v in items.vectors if v is not None]))
    out = np.zeros((len(items), encoder.dim), dtype=np.float32)
    text_rows = [i for i, t in enumerate(items.texts) if t is not None]
    if text_rows:
        out[text_rows] = (embed_texts or encoder.encode)([items.texts[i] for i in text_rows])  # type: ignore[misc]
    for row, vector in enumerate(items.vectors):
        if vector is not None:
            out[row] = vector
    return out


def predictions(
    probs: np.ndarray, *, task: str, head_labels: Sequence[str], classes: Sequence[str], positive_label: str
) -> list[dict[str, Any]]:
    """Per item: the calibrated probability of each head label, the positive label's score, and the
    predicted label (binary: the positive label at score ≥ 0.5, else the other class; multiclass:
    the most probable label; multilabel: every label at ≥ 0.5, the most probable of them first)."""
    positive = list(head_labels).index(positive_label)
    negative = next((c for c in classes if c != positive_label), None)
    out = []
    for row in probs:
        scores = {label: float(p) for label, p in zip(head_labels, row, strict=True)}
        if task == "binary":
            chosen = [positive_label] if row[positive] >= 0.5 else ([negative] if negative else [])
        elif task == "multiclass":
            chosen = [head_labels[int(np.argmax(row))]]
        else:
            chosen = [head_labels[j] for j in np.argsort(-row, kind="stable") if row[j] >= 0.5]
        out.append(
            {
                "scores": scores,
                "score": float(row[positive]),
                "predicted_label": chosen[0] if chosen else None,
                "predicted_labels": chosen,
            }
        )
    return out
