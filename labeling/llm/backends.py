"""The backend an LLM reviewer talks to, built from its configuration.

The local model is loaded once per process and shared by every reviewer that uses it (it holds
about 1 GB of weights); an endpoint backend is cheap and built per call, with the reviewer's
decrypted key and a transport that checks every connection against the LLM address policy
(`addresses.py`).
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from activelearning.llm.base import Backend
from activelearning.llm.local import LocalBackend
from activelearning.llm.openai import OpenAIBackend

from .addresses import check_base_url, checked_transport
from .models import BackendKind, LLMReviewer


@cache
def local_backend() -> LocalBackend:
    return LocalBackend(settings.LLM_WEIGHTS_DIR, threads=settings.LLM_TORCH_THREADS)


def backend_for(reviewer: LLMReviewer) -> Backend:
    """The reviewer's backend. UnsafeTarget when its endpoint URL breaks the address policy
    (the addresses themselves are checked again at each connection)."""
    if reviewer.backend == BackendKind.LOCAL:
        return local_backend()
    if reviewer.backend == BackendKind.OPENAI:
        check_base_url(reviewer.base_url, resolve=False)
        return OpenAIBackend(
            reviewer.base_url,
            reviewer.model_name,
            reviewer.api_key,
            timeout=reviewer.timeout_seconds,
            max_retries=reviewer.max_retries,
            requests_per_minute=reviewer.requests_per_minute,
            transport=checked_transport(),
        )
    raise ValueError(f"Unknown LLM backend {reviewer.backend!r}.")
