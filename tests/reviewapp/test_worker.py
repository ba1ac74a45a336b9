"""A real Celery worker, over the real Redis broker, runs a task that writes to PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reviewapp.models import AuditEvent, ContentItem, ReviewTask
from reviewapp.tasks import sweep_expired_leases
from tests.worker import wait_for

pytestmark = pytest.mark.worker


def _task(policy, queue, user, *, lease_ends):  # type: ignore[no-untyped-def]
    item = ContentItem.objects.create(source="s", external_id=f"e-{lease_ends.timestamp()}", text="hi")
    return ReviewTask.objects.create(
        item=item,
        policy=policy,
        queue=queue,
        reason="low_confidence",
        due_at=timezone.now(),
        leased_by=user,
        lease_expires_at=lease_ends,
    )


def test_worker_sweeps_expired_leases_and_audits(
    transactional_db, celery_worker_process, policy, queue, django_user_model
) -> None:
    reviewer = django_user_model.objects.create_user("reviewer")
    expired = _task(policy, queue, reviewer, lease_ends=timezone.now() - timedelta(minutes=1))
    live = _task(policy, queue, reviewer, lease_ends=timezone.now() + timedelta(minutes=10))

    sweep_expired_leases.delay()

    wait_for(lambda: AuditEvent.objects.filter(action="task.lease_expired", object_id=str(expired.pk)).exists())
    expired.refresh_from_db()
    live.refresh_from_db()
    assert (expired.leased_by, expired.lease_expires_at) == (None, None)
    assert live.leased_by == reviewer
    event = AuditEvent.objects.get(action="task.lease_expired")
    assert event.actor_label == "system" and event.before["leased_by"] == reviewer.pk
