"""Case history: an upstream author's other items, decisions and outcomes."""

from __future__ import annotations

from typing import Any

from ..models import ReviewTask


def author_history_line(*, task: ReviewTask) -> Any:
    """The compact 'this author: N prior violations under this policy' line, or None (blind queues,
    queues that hide it, items without an author key)."""
    return None
