"""The backend an LLM reviewer talks to, built from its configuration.

The local model is loaded once per process and shared by every reviewer that uses it (it holds
about 1 GB of weights); an endpoint backend is cheap and built per call.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings

from activelearning.llm.base import Backend
from activelearning.llm.local import LocalBackend

from .models import BackendKind, LLMReviewer


@cache
def local_backend() -> LocalBackend:
    return LocalBackend(settings.LLM_WEIGHTS_DIR, threads=settings.LLM_TORCH_THREADS)


def backend_for(reviewer: LLMReviewer) -> Backend:
    if reviewer.backend == BackendKind.LOCAL:
        return local_backend()
    raise NotImplementedError(f"backend {reviewer.backend!r} is not available yet")
