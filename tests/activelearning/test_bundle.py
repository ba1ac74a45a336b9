"""Model bundles without Django: deterministic bytes, refusal of altered files, item validation."""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from activelearning.bundle import BundleError, build_bundle, load_bundle
from activelearning.encoders import HashedNgramConfig, HashedNgramEncoder, MiniLMEncoder, PrecomputedEncoder
from activelearning.head_inputs import Bags, HeadConfig
from activelearning.heads import TrainedHead, train_head
from activelearning.predict_items import ItemsError, check_items, predictions
from labeling.datasets import read_convabuse

BUCKETS = 2**12


@pytest.fixture(scope="module")
def hashed_model(convabuse_dir: Path) -> tuple[TrainedHead, HashedNgramEncoder, list[str]]:
    records = [r for r in read_convabuse(convabuse_dir, limit=600) if r.label is not None]
    encoder = HashedNgramEncoder(HashedNgramConfig(num_buckets=BUCKETS))
    bags = Bags.from_list(encoder.bags(r.text for r in records), BUCKETS)
    y = np.asarray([[float(r.label == "abusive")] for r in records], dtype=np.float32)
    train, dev = np.arange(0, 400), np.arange(400, 500)
    config = HeadConfig(hidden=16, embedding_dim=8, max_epochs=10)
    head = train_head(bags.take(train), y[train], bags.take(dev), y[dev], labels=["violating"], config=config)
    return head, encoder, [r.text for r in records[500:]]


def bundle_of(head: TrainedHead, encoder: HashedNgramEncoder | PrecomputedEncoder) -> bytes:
    config = {
        "model": {
            "task": "binary",
            "head_labels": ["violating"],
            "classes": ["not_violating", "violating"],
            "positive_label": "violating",
        },
        "encoder": encoder.config(),
        "thresholds": None,
    }
    return build_bundle(head=head, config=config, card={"model": "m@v1"}, card_markdown="# m@v1\n")


def test_a_bundle_is_the_same_bytes_every_time_and_scores_like_the_head(hashed_model) -> None:
    head, encoder, texts = hashed_model

    data = bundle_of(head, encoder)
    model = load_bundle(data)

    assert bundle_of(head, encoder) == data
    direct = head.predict_proba(Bags.from_list(encoder.bags(texts), BUCKETS))
    assert np.array_equal(model.predict(texts), direct)
    assert model.head.temperature.tolist() == head.temperature.tolist()
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in zipfile.ZipFile(io.BytesIO(data)).infolist())


def test_an_altered_or_foreign_bundle_is_refused(hashed_model, tmp_path) -> None:
    head, encoder, _ = hashed_model
    data = bundle_of(head, encoder)
    members = {
        i.filename: zipfile.ZipFile(io.BytesIO(data)).read(i.filename)
        for i in zipfile.ZipFile(io.BytesIO(data)).infolist()
    }

    def rezip(changed: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, content in changed.items():
                archive.writestr(name, content)
        return buffer.getvalue()

    weights = bytearray(members["model.safetensors"])
    weights[-1] ^= 1
    config = json.loads(members["config.json"])
    config["model"]["positive_label"] = "not_violating"

    with pytest.raises(BundleError, match=r"model\.safetensors does not match its sha256"):
        load_bundle(rezip({**members, "model.safetensors": bytes(weights)}))
    with pytest.raises(BundleError, match=r"config\.json does not match"):
        load_bundle(rezip({**members, "config.json": json.dumps(config).encode()}))
    with pytest.raises(BundleError, match="holds exactly"):
        load_bundle(rezip({**members, "extra.py": b"import os"}))
    with pytest.raises(BundleError, match="does not match the expected"):
        load_bundle(data, expected_sha256="0" * 64)
    with pytest.raises(BundleError, match="not a zip file"):
        load_bundle(b"PK\x03\x04 not really")
    (tmp_path / "b.zip").write_bytes(data)
    assert load_bundle(tmp_path / "b.zip").sha256 == load_bundle(data).sha256


def test_items_are_checked_for_what_the_model_reads() -> None:
    upstream = PrecomputedEncoder("upstream:clip@1", 4)
    minilm, hashed = MiniLMEncoder(), HashedNgramEncoder()
    bad = {
        "items[0].embedding: 3 numbers; this model reads 4": ([{"embedding": [1, 2, 3]}], upstream),
        "items[0].embedding: every entry must be a number": ([{"embedding": [1, 2, True, 4]}], upstream),
        "items[0].embedding: NaN or infinite values": ([{"embedding": [1, 2, float("nan"), 4]}], upstream),
        "items[0].embedding: a number beyond the float range": ([{"embedding": [1, 2, 10**400, 4]}], upstream),
        "items[0].embedding: values beyond the float32 range": ([{"embedding": [1, 2, 1e300, 4]}], upstream),
        "items[0].text: this model reads embedding only": ([{"text": "hi"}], upstream),
        "items[0].embedding: must be an array of 4 numbers": ([{"embedding": "1,2,3,4"}], upstream),
        "items[1]: an object with 'text' or 'embedding'": ([{"text": "a"}, "b"], hashed),
        "items: a non-empty list": ({"text": "a"}, hashed),
        "at most 1000 items per call": ([{"text": "a"}] * 1001, hashed),
    }
    for message, (items, encoder) in bad.items():
        with pytest.raises(ItemsError, match=re.escape(message)):
            check_items(items, encoder)

    mixed = check_items([{"text": "hello", "id": "a"}, {"embedding": [0.0] * 384}], minilm)
    assert mixed.texts == ["hello", None] and mixed.ids == ["a", None] and mixed.vectors[1].dtype == np.float32


def test_predicted_labels_by_task() -> None:
    probs = np.asarray([[0.7, 0.2, 0.6], [0.1, 0.3, 0.2]])
    labels = ["spam", "scam", "hate"]

    multiclass = predictions(probs, task="multiclass", head_labels=labels, classes=labels, positive_label="hate")
    multilabel = predictions(probs, task="multilabel", head_labels=labels, classes=labels, positive_label="hate")
    binary = predictions(
        np.asarray([[0.5], [0.49]]),
        task="binary",
        head_labels=["violating"],
        classes=["not_violating", "violating"],
        positive_label="violating",
    )

    assert [p["predicted_label"] for p in multiclass] == ["spam", "scam"]
    assert [p["score"] for p in multiclass] == [0.6, 0.2]
    assert [p["predicted_labels"] for p in multilabel] == [["spam", "hate"], []]
    assert [p["predicted_label"] for p in binary] == ["violating", "not_violating"]
