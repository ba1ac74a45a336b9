"""Celery tasks of the labeling app: thin wrappers around services, idempotent, bounded."""

from __future__ import annotations

from celery import shared_task

from reviewapp.models import Queue
from reviewapp.retry import IDEMPOTENT

from .services.consensus import task_resolve, tasks_resolve_due
from .services.honeypots import honeypots_top_up


@shared_task(name="labeling.resolve_task", time_limit=60, soft_time_limit=50, **IDEMPOTENT)
def resolve_task(task_id: int) -> str:
    """Take consensus on one completed task (idempotent: a resolved task is skipped)."""
    return task_resolve(task_id=task_id)


@shared_task(name="labeling.resolve_due_tasks", time_limit=300, soft_time_limit=280, **IDEMPOTENT)
def resolve_due_tasks() -> int:
    """Sweep: resolve tasks whose resolution message was lost or delayed."""
    return tasks_resolve_due()


@shared_task(name="labeling.honeypots_top_up", time_limit=300, soft_time_limit=280, **IDEMPOTENT)
def honeypots_top_up_all() -> int:
    return sum(honeypots_top_up(queue=queue) for queue in Queue.objects.filter(is_active=True, honeypot_rate__gt=0))


@shared_task(name="labeling.refresh_reliability", time_limit=900, soft_time_limit=840, **IDEMPOTENT)
def refresh_reliability(policy_id: int | None = None) -> int:
    """Re-fit Dawid–Skene reliability for one policy, or for every active policy."""
    from .models import Policy
    from .services.reliability import reliability_refresh

    policies = Policy.objects.filter(is_active=True)
    if policy_id is not None:
        policies = policies.filter(pk=policy_id)
    return sum(reliability_refresh(policy=policy) for policy in policies)
