"""'Policy updated: …' — shown to a reviewer once, on their first task under a new policy version."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from ..models import PolicyNoticeSeen, PolicyVersion


@dataclass(frozen=True)
class PolicyNotice:
    version: PolicyVersion
    summary: str


def policy_notice_take(*, version: PolicyVersion | None, reviewer: User) -> PolicyNotice | None:
    """The notice for `version` if `reviewer` has not seen it yet (and mark it seen); else None.

    Only a version with a `change_summary` (one published from a draft) has a notice. Taking it
    records `PolicyNoticeSeen`, so the next render of any task under that version shows nothing;
    two renders racing both insert, the unique constraint lets one win and the other shows nothing.
    """
    if version is None or not version.change_summary:
        return None
    try:
        with transaction.atomic():
            _, created = PolicyNoticeSeen.objects.get_or_create(reviewer=reviewer, policy_version=version)
    except IntegrityError:
        return None
    return PolicyNotice(version=version, summary=version.change_summary) if created else None
