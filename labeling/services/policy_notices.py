"""'Policy updated: …' — shown to a reviewer once, on their first task under a new policy version."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from ..models import PolicyVersion


def policy_notice_take(*, version: PolicyVersion | None, reviewer: User) -> Any:
    """The notice for `version` if `reviewer` has not seen it yet (and mark it seen); else None."""
    return None
