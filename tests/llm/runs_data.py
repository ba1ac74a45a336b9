"""Test data for LLM runs: a policy with items, tasks and current gold labels (real texts)."""

from __future__ import annotations

from django.utils import timezone

from labeling.llm.models import LLMReviewer
from labeling.llm.services.reviewers import llm_reviewer_create
from labeling.models import GoldLabel, GoldSource, Policy
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem, Queue, ReviewTask
from tests.factories import PolicyFactory, QueueFactory

TEXTS = [
    ("you are a worthless idiot and everyone hates you", "violating"),
    ("thanks for the help yesterday, it worked", "not_violating"),
    ("shut up you stupid clown", "violating"),
    ("what time does the library open on sunday?", "not_violating"),
    ("nobody wants you here, disgusting loser", "violating"),
    ("i liked the second chapter more than the first", "not_violating"),
    ("you are pathetic, go away", "violating"),
    ("can you recommend a good pasta recipe", "not_violating"),
]


def make_gold_items(n: int, *, policy: Policy | None = None, queue: Queue | None = None, prefix: str = "g"):  # type: ignore[no-untyped-def]
    """`n` items with a task and a current gold label each; returns (policy, queue, item ids)."""
    policy = policy or PolicyFactory()
    queue = queue or QueueFactory()
    version = policy.current_version()
    ids = []
    for i in range(n):
        text, label = TEXTS[i % len(TEXTS)]
        item = ContentItem.objects.create(source="test", external_id=f"{prefix}{i}", text=f"{text} ({i})")
        task = ReviewTask.objects.create(
            item=item, policy=policy, queue=queue, reason="low_confidence", due_at=timezone.now()
        )
        GoldLabel.objects.create(
            item=item, policy=policy, policy_version=version, labels=[label], source=GoldSource.ADJUDICATION, task=task
        )
        ids.append(item.pk)
    return policy, queue, ids


def local_reviewer(policy: Policy, name: str = "Gemma local") -> LLMReviewer:
    return llm_reviewer_create(name=name, policy=policy, backend="local", model_name="gemma-3-270m", actor=SYSTEM)
