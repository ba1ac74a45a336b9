"""Test data for LLM pre-labels, built with the models: an LLM reviewer, its machine account and
its machine-made annotations (the run engine that writes them in production is tested elsewhere)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User

from labeling.llm.models import LLMReviewer, QueuePrelabels
from labeling.models import Annotation, AnnotationSource, Policy


def llm_reviewer(policy: Policy, name: str = "gemma-local") -> LLMReviewer:
    account = User.objects.create_user(username=f"llm-{name}")
    return LLMReviewer.objects.create(
        name=name, policy=policy, policy_version=policy.current_version(), model_name="gemma-3-270m", account=account
    )


def llm_annotation(reviewer: LLMReviewer, task: Any, label: str) -> Annotation:
    return Annotation.objects.create(
        task=task,
        item_id=task.item_id,
        policy_id=task.policy_id,
        policy_version=reviewer.policy_version,
        reviewer=reviewer.account,
        submission_id=uuid.uuid4(),
        labels=[label],
        handle_time_ms=0,
        source=AnnotationSource.LLM,
    )


def prelabels_on(queue: Any, reviewer: LLMReviewer, *, fraction: float = 0.5, counts: bool = False) -> QueuePrelabels:
    return QueuePrelabels.objects.create(
        queue=queue, reviewer=reviewer, suggest_fraction=fraction, counts_toward_consensus=counts
    )
