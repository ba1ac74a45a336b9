"""A reviewer's standing in a queue: qualified or onboarding, active or paused."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from ..models import Queue


def queue_standing_for(*, queue: Queue, reviewer: User) -> Any:
    """The reviewer's standing in `queue` (has `.live`: may they work live tasks), or None."""
    return None
