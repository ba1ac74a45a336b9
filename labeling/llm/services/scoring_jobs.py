"""Starting the LLM as an upstream model: which items a scoring run covers, and the run itself.

Kept apart from `services.scoring` (what a finished chunk records), which the run engine
imports: this module imports the engine, so the two directions never meet in one module.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import Q

from reviewapp.audit import Actor
from reviewapp.models import ContentItem

from ..models import LLMReviewer, LLMRun, RunKind
from .runs import llm_run_start


def scoring_item_ids(
    *, reviewer: LLMReviewer, since: datetime | None = None, item_ids: list[int] | None = None
) -> list[int]:
    """Items to score: `item_ids` as given (those that exist), else items under the reviewer's
    policy (with a decision or a task of it) that arrived at or after `since`, oldest first."""
    if item_ids is not None:
        found = set(ContentItem.objects.filter(pk__in=item_ids).values_list("pk", flat=True))
        return [item_id for item_id in dict.fromkeys(item_ids) if item_id in found]
    if since is None:
        raise ValidationError("Give the items to score or a time to score from.")
    policy = reviewer.policy
    items = ContentItem.objects.filter(Q(decisions__policy=policy) | Q(tasks__policy=policy), created_at__gte=since)
    return list(items.order_by("created_at", "pk").values_list("pk", flat=True).distinct())


def llm_scoring_start(*, reviewer: LLMReviewer, item_ids: list[int], actor: User | Actor) -> LLMRun:
    """Start a scoring run of `reviewer` over `item_ids`; each finished chunk is ingested as
    decisions by the run engine through `llm_decisions_record`."""
    if not reviewer.is_active:
        raise ValidationError(f"{reviewer.name} is switched off.")
    if not item_ids:
        raise ValidationError("No items to score.")
    return llm_run_start(reviewer=reviewer, kind=RunKind.SCORING, item_ids=item_ids, actor=actor)
