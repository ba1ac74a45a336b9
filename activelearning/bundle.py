"""Self-describing model bundles, and the scoring code the server and a bundle share.

A bundle is one zip file holding everything needed to run a registered model away from the server:

- `model.safetensors` — the head's tensors (safetensors: a flat table of tensors, no code to run);
- `config.json` — the encoder config, head labels, classes, positive label, per-label temperature,
  hyperparameters, the routing thresholds in force when it was exported, and the input schema;
- `model_card.json` and `MODEL_CARD.md` — training set, split definition, held-out metrics with
  intervals and the split and stratum they were measured on, slices, intended use, limitations;
- `SHA256SUMS` — the sha256 of every other member (`sha256sum -c` reads it after unzipping).

The zip is deterministic: members in a fixed order, stored uncompressed, with fixed timestamps and
permissions, and JSON written with sorted keys. The same model with the same card gives the same
bytes, so the bundle's own sha256 identifies it (the server sends it as the ETag).

Scoring: `activelearning.predict_items.model_features` turns validated items into the head's input
and `TrainedHead.predict_proba` scores it; the server's predict endpoint and `BundledModel.predict`
call both on the same float32 input, and the head is rebuilt from the same tensors, so a bundle
reproduces the server's scores bit for bit for the same batch of items. (Float32 matrix products
may differ in the last bits when a row is scored inside a batch of another size, ~1e-7: compare
the same batch.)

Plain Python, numpy and torch: no Django. `load_bundle` needs only this package and its
dependencies.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch

from activelearning.encoders import encoder_from_config
from activelearning.head_inputs import Features
from activelearning.heads import TrainedHead
from activelearning.predict_items import (
    AnyEncoder,
    Items,
    ItemsError,
    check_items,
    input_schema,
    model_features,
    predictions,
)

FORMAT = "reviewapp.activelearning.bundle"
FORMAT_VERSION = 1
WEIGHTS, CONFIG, CARD_JSON, CARD_MARKDOWN, SUMS = (
    "model.safetensors",
    "config.json",
    "model_card.json",
    "MODEL_CARD.md",
    "SHA256SUMS",
)
MEMBERS = (CONFIG, CARD_JSON, CARD_MARKDOWN, WEIGHTS, SUMS)  # the order in the zip
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can hold: no clock in the bytes
_MAX_MEMBER_BYTES = 4 << 30


class BundleError(ValueError):
    """A file that is not a bundle of this format, or whose bytes do not match their sha256."""


# --- writing ----------------------------------------------------------------------------------


def _json(data: Any) -> bytes:
    return (json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def head_config_section(head: TrainedHead) -> dict[str, Any]:
    """The head's payload without its tensors (those go to model.safetensors).

    JSON has no infinity: a head trained without a dev split has best_dev_loss = inf, stored as null.
    """
    section = {key: value for key, value in head.payload().items() if key != "state_dict"}
    history = section["history"]
    if not math.isfinite(history["best_dev_loss"]):
        section["history"] = {**history, "best_dev_loss": None}
    return section


def _head_payload(section: Mapping[str, Any], tensors: dict[str, Any]) -> dict[str, Any]:
    history = section["history"]
    if history.get("best_dev_loss") is None:
        history = {**history, "best_dev_loss": math.inf}
    return {**section, "history": history, "state_dict": tensors}


def build_bundle(*, head: TrainedHead, config: Mapping[str, Any], card: Mapping[str, Any], card_markdown: str) -> bytes:
    """The bundle's bytes. `config` holds the model's description (encoder, labels, thresholds…):
    the head section, the input schema and the tensor table are added here."""
    tensors = {name: tensor.detach().contiguous() for name, tensor in head.net.state_dict().items()}
    weights = safetensors.torch.save(tensors, metadata={"format": FORMAT})
    full_config = {
        **config,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "head": head_config_section(head),
        "input_schema": input_schema(config["encoder"]),
        "weights": {
            "file": WEIGHTS,
            "tensors": {
                n: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)} for n, t in tensors.items()
            },
        },
    }
    members = {
        CONFIG: _json(full_config),
        CARD_JSON: _json(dict(card)),
        CARD_MARKDOWN: card_markdown.encode("utf-8"),
        WEIGHTS: weights,
    }
    members[SUMS] = "".join(f"{hashlib.sha256(members[n]).hexdigest()}  {n}\n" for n in sorted(members)).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in MEMBERS:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.create_system = 3  # unix, whatever machine builds it
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, members[name])
    return buffer.getvalue()


# --- reading ----------------------------------------------------------------------------------


@dataclass
class BundledModel:
    """A model loaded from a bundle: its head, encoder, config and card."""

    head: TrainedHead
    encoder: AnyEncoder
    config: dict[str, Any]
    card: dict[str, Any]
    sha256: str  # of the bundle file
    _embed: Callable[[list[str]], np.ndarray] | None = field(default=None, repr=False)

    @property
    def head_labels(self) -> list[str]:
        return list(self.config["model"]["head_labels"])

    def features(self, items: Items) -> Features:
        return model_features(self.encoder, items, self._embed)

    def predict_proba(self, items: list[dict[str, Any]]) -> np.ndarray:
        """(n, L) float64 calibrated probabilities for items in the predict endpoint's form."""
        return self.head.predict_proba(self.features(check_items(items, self.encoder)))

    def predict(
        self, texts: Sequence[str] | None = None, *, embeddings: Sequence[Sequence[float]] | None = None
    ) -> np.ndarray:
        """(n, L) float64 calibrated probabilities for texts, or for embeddings the model reads."""
        if (texts is None) == (embeddings is None):
            raise ItemsError("give texts or embeddings")
        items = (
            [{"text": t} for t in texts]
            if texts is not None
            else [{"embedding": [float(x) for x in e]} for e in embeddings]
        )  # type: ignore[union-attr]
        return self.predict_proba(items)

    def predict_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per item what the predict endpoint answers: scores, score, predicted label(s)."""
        model = self.config["model"]
        return predictions(
            self.predict_proba(items),
            task=model["task"],
            head_labels=model["head_labels"],
            classes=model["classes"],
            positive_label=model["positive_label"],
        )


def load_bundle(source: str | Path | bytes, *, expected_sha256: str | None = None) -> BundledModel:
    """Open a bundle (a path or its bytes), check every sha256 and the format, rebuild the model.

    With `expected_sha256` (the server's `X-Reviewapp-Artifact-Sha256`), refuse other bytes.
    """
    data = bytes(source) if isinstance(source, bytes | bytearray) else Path(source).read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256.strip().lower():
        raise BundleError(f"bundle sha256 {sha256} does not match the expected {expected_sha256}")
    members = _members(data)
    config, card = json.loads(members[CONFIG]), json.loads(members[CARD_JSON])
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"not a {FORMAT} v{FORMAT_VERSION} bundle: {config.get('format')!r} v{config.get('format_version')!r}"
        )
    try:
        tensors = safetensors.torch.load(members[WEIGHTS])
    except Exception as error:  # safetensors raises its own error types for malformed headers
        raise BundleError(f"{WEIGHTS} is not readable: {error}") from error
    if sorted(tensors) != sorted(config["weights"]["tensors"]):
        raise BundleError(f"{WEIGHTS} holds tensors {sorted(tensors)}, config.json lists others")
    head = TrainedHead.from_payload(_head_payload(config["head"], tensors))
    return BundledModel(
        head=head, encoder=encoder_from_config(config["encoder"]), config=config, card=card, sha256=sha256
    )


def _members(data: bytes) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise BundleError(f"not a zip file: {error}") from error
    with archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        if sorted(names) != sorted(MEMBERS):
            raise BundleError(f"a bundle holds exactly {', '.join(MEMBERS)}; this one holds {', '.join(names)}")
        if any(i.compress_type != zipfile.ZIP_STORED or i.file_size > _MAX_MEMBER_BYTES for i in infos):
            raise BundleError("bundle members must be stored uncompressed and below 4 GiB")
        members = {name: archive.read(name) for name in names}
    expected = {}
    for line in members[SUMS].decode("ascii", errors="replace").splitlines():
        digest, _, name = line.partition("  ")
        expected[name] = digest
    for name in MEMBERS:
        if name != SUMS and hashlib.sha256(members[name]).hexdigest() != expected.get(name):
            raise BundleError(f"{name} does not match its sha256 in {SUMS}")
    return members
