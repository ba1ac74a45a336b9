"""Model artifacts: one file per trained model, written atomically, identified by its sha256.

The file is a `torch.save` of plain data and tensors — head weights, hyperparameters, label
names, per-label temperature, encoder config, training history and free-form metadata — and is
read back with `torch.load(weights_only=True)`, which refuses pickled code: an artifact from the
registry can never run code on the worker that loads it.

Writing: the bytes go to a temporary file in the target folder, are flushed and fsynced, then
`os.replace` puts them in place in one step. A process killed mid-write leaves at most a
`.tmp` file beside the target, never a truncated artifact at the target path, and an existing
artifact at that path stays intact until the new one is complete.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from activelearning.heads import TrainedHead

FORMAT = "reviewapp.activelearning.model"
FORMAT_VERSION = 1
_READ_CHUNK = 1 << 20


class ArtifactError(ValueError):
    """An artifact that is missing, of an unknown format, or whose sha256 does not match."""


@dataclass(frozen=True)
class ArtifactInfo:
    path: Path
    sha256: str  # hex digest of the file's bytes
    size: int  # bytes


@dataclass
class LoadedModel:
    head: TrainedHead
    encoder: dict[str, Any]  # encoder config (see activelearning.encoders.encoder_from_config)
    metadata: dict[str, Any]
    sha256: str


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(
    path: Path, head: TrainedHead, *, encoder: Mapping[str, Any], metadata: Mapping[str, Any] | None = None
) -> ArtifactInfo:
    """Serialise `head` with its encoder config to `path` atomically; returns the file's sha256.

    `metadata` must be plain data (str, numbers, bools, None, lists, dicts): it is stored for
    the registry (dataset snapshot id, metrics, git sha) and checked by the safe loader.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "torch_version": str(torch.__version__),  # a TorchVersion object would not pass the safe loader
        "encoder": dict(encoder),
        "metadata": dict(metadata or {}),
        "head": head.payload(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    write_atomic(Path(path), data)
    return ArtifactInfo(Path(path), hashlib.sha256(data).hexdigest(), len(data))


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` via temp file + fsync + os.replace; the temp file is removed on error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)  # noqa: SIM115
    try:
        with handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable across a power cut; not all platforms allow opening a folder.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_model(path: Path, *, expected_sha256: str | None = None) -> LoadedModel:
    """Load an artifact; with `expected_sha256`, refuse a file whose bytes hash differently."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path} does not exist")
    data = path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256.lower():
        raise ArtifactError(f"{path}: sha256 {sha256} does not match the expected {expected_sha256}")
    try:
        payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for foreign or corrupt files
        raise ArtifactError(f"{path} is not a readable model artifact: {error}") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{path}: format version {payload.get('format_version')} is not {FORMAT_VERSION}")
    head = TrainedHead.from_payload(payload["head"])
    return LoadedModel(head=head, encoder=payload["encoder"], metadata=payload["metadata"], sha256=sha256)
