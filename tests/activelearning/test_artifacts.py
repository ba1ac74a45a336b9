"""Model artifacts: identical predictions after a round trip, sha256, atomic writes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from activelearning import artifacts
from activelearning.artifacts import ArtifactError, file_sha256, load_model, save_model
from activelearning.encoders import HashedNgramConfig, HashedNgramEncoder
from activelearning.heads import Bags, HeadConfig, TrainedHead, train_head

REPO_ROOT = Path(__file__).resolve().parents[2]
ENCODER = {"kind": "minilm", "encoder_id": "minilm:test", "dim": 6, "max_seq_length": 256}


@pytest.fixture(scope="module")
def head() -> TrainedHead:
    gen = np.random.default_rng(0)
    x = gen.normal(size=(160, 6)).astype(np.float32)
    y = np.column_stack([x[:, 0] > 0, x[:, 1] > 0.5]).astype(np.float32)
    return train_head(
        x[:120], y[:120], x[120:], y[120:], labels=["insult", "threat"], config=HeadConfig(hidden=8, max_epochs=5)
    )


@pytest.mark.slow
def test_round_trip_gives_identical_predictions(tmp_path: Path, head: TrainedHead) -> None:
    x = np.random.default_rng(1).normal(size=(30, 6)).astype(np.float32)
    info = save_model(tmp_path / "model.pt", head, encoder=ENCODER, metadata={"snapshot": "ds-7", "f1": 0.71})
    loaded = load_model(info.path, expected_sha256=info.sha256)
    assert np.array_equal(loaded.head.predict_proba(x), head.predict_proba(x))
    assert np.array_equal(
        loaded.head.mc_dropout_proba(x, samples=3, seed=2), head.mc_dropout_proba(x, samples=3, seed=2)
    )
    assert loaded.head.labels == ("insult", "threat")
    assert loaded.head.temperature.tolist() == head.temperature.tolist()
    assert loaded.head.config == head.config
    assert loaded.encoder == ENCODER and loaded.metadata == {"snapshot": "ds-7", "f1": 0.71}


def test_hashed_ngram_model_round_trips(tmp_path: Path) -> None:
    encoder = HashedNgramEncoder(HashedNgramConfig(num_buckets=512))
    texts = ["you idiot", "nice post", "what a clown", "thanks for sharing"] * 5
    bags = Bags.from_list(encoder.bags(texts), 512)
    y = np.asarray([[t in ("you idiot", "what a clown")] for t in texts], dtype=np.float32)
    head = train_head(
        bags, y, None, None, labels=["insult"], config=HeadConfig(hidden=0, embedding_dim=8, max_epochs=3)
    )
    info = save_model(tmp_path / "ngram.pt", head, encoder=encoder.config())
    loaded = load_model(info.path)
    assert np.array_equal(loaded.head.predict_proba(bags), head.predict_proba(bags))
    assert loaded.encoder == encoder.config()


@pytest.mark.slow
def test_sha256_is_the_files_and_a_mismatch_is_refused(tmp_path: Path, head: TrainedHead) -> None:
    info = save_model(tmp_path / "model.pt", head, encoder=ENCODER)
    assert info.sha256 == hashlib.sha256(info.path.read_bytes()).hexdigest() == file_sha256(info.path)
    assert info.size == info.path.stat().st_size
    with pytest.raises(ArtifactError, match="does not match"):
        load_model(info.path, expected_sha256="0" * 64)


@pytest.mark.slow
def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(
    tmp_path: Path, head: TrainedHead, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = save_model(tmp_path / "model.pt", head, encoder=ENCODER, metadata={"version": 1})

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(artifacts.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_model(tmp_path / "model.pt", head, encoder=ENCODER, metadata={"version": 2})
    with pytest.raises(OSError, match="No space"):
        save_model(tmp_path / "new.pt", head, encoder=ENCODER)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
    assert file_sha256(tmp_path / "model.pt") == old.sha256


@pytest.mark.slow
def test_process_killed_before_the_rename_leaves_no_artifact(tmp_path: Path, head: TrainedHead) -> None:
    # The worst moment to die: every byte is in the temp file, the rename has not happened yet.
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO_ROOT)!r})
        import numpy as np
        from activelearning import artifacts
        from activelearning.heads import HeadConfig, train_head
        x = np.zeros((4, 2), np.float32); y = np.array([[0], [1], [0], [1]], np.float32)
        head = train_head(x, y, None, None, labels=["a"], config=HeadConfig(hidden=0, max_epochs=1))
        artifacts.os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        artifacts.save_model({str(tmp_path / "model.pt")!r}, head, encoder={{}})
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()[-2000:]
    assert not (tmp_path / "model.pt").exists()
    assert all(p.name.endswith(".tmp") for p in tmp_path.iterdir())  # at most an orphaned temp file


def test_a_foreign_or_code_carrying_file_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not a readable"):
        load_model(junk)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ArtifactError, match="is not a"):
        load_model(other)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": artifacts.FORMAT, "payload": Path("/etc/passwd")}, pickled)  # an arbitrary class
    with pytest.raises(ArtifactError, match="not a readable"):
        load_model(pickled)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
