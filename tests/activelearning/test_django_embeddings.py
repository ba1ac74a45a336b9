"""The frozen-embedding cache: vectors are computed once per item, and once per distinct text."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from activelearning.encoders import PrecomputedEncoder
from activelearning.models import ItemEmbedding
from activelearning.services.features import item_embeddings, item_features
from tests.factories import ContentItemFactory


class CountingEncoder:
    """Stands in for MiniLM: same interface, 4-dim vectors derived from the text, counts its calls."""

    encoder_id = "counting:v1"
    dim = 4

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded += list(texts)
        return np.asarray([[len(t), t.count("a"), 1.0, 0.0] for t in texts], dtype=np.float32)


def test_vectors_are_encoded_once_and_reused_for_the_same_text(db) -> None:
    first, second = ContentItemFactory(text="a cat"), ContentItemFactory(text="a dog")
    encoder = CountingEncoder()

    vectors = item_embeddings(encoder, [first.pk, second.pk], ["a cat", "a dog"])  # type: ignore[arg-type]
    again = item_embeddings(encoder, [second.pk, first.pk], ["a dog", "a cat"])  # type: ignore[arg-type]
    repost = ContentItemFactory(text="a cat")
    reused = item_embeddings(encoder, [repost.pk], ["a cat"])  # type: ignore[arg-type]

    assert encoder.encoded == ["a cat", "a dog"]
    assert np.array_equal(again, vectors[::-1]) and np.array_equal(reused[0], vectors[0])
    assert ItemEmbedding.objects.filter(encoder_id="counting:v1").count() == 3


def test_upstream_vectors_of_the_wrong_width_or_missing_are_left_out(db) -> None:
    encoder = PrecomputedEncoder("upstream:d3", 3)

    features = item_features(encoder, item_ids=[1, 2, 3], texts=["", "", ""], embeddings=[[3, 4, 0], None, [1, 2]])

    assert features.kept.tolist() == [True, False, False]
    assert np.allclose(features.features, [[0.6, 0.8, 0.0]])
