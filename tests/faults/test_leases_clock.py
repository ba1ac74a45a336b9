"""Leases that expire while a reviewer is mid-item, judged by processes whose clocks are wrong.

Every lease comparison uses the database clock (statement_timestamp()), so a web or worker
process whose wall clock is hours off must behave exactly like a correct one. Here gunicorn and
a Celery worker run with libfaketime shifting their clock three hours ahead or behind, against
pytest-django's database and the test broker; the data is committed (transactional_db) so that
they see it. Each test would fail under one of the two skews if the code it exercises compared a
lease with the process clock instead.

What claims.py and labeling.services.annotations promise about a reviewer whose lease expired mid-item:
- renewing the lease is refused (409), so the page can tell them;
- their answer is accepted, flagged late, if nobody else holds the task;
- it is refused with a clear message (409) once another reviewer claimed it, and the answer is
  kept in the audit log; the other reviewer's answer is then the one recorded;
- the expiry sweep releases expired leases only, and a released task takes a late answer.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
import requests
from django.conf import settings
from django.db import connection
from django.utils import timezone

from labeling.models import Annotation
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, ReviewTask
from reviewapp.services.tokens import token_create
from reviewapp.tasks import sweep_expired_leases
from tests.factories import PolicyFactory, PolicyVersionFactory, QueueFactory, ReviewTaskFactory, UserFactory
from tests.faults.services import (
    Process,
    service_env,
    skewed_clock_env,
    spawn_web,
    spawn_worker,
    stop_all,
    wait_for_log,
    wait_for_web,
    wait_until,
    wall_clock_of,
)
from tests.worker import test_database_url as pytest_database_url

SKEWS = {"ahead": timedelta(hours=3), "behind": timedelta(hours=-3)}
LEASE_SECONDS = 600
# How far apart two readings of the same clock may be in these tests (process start-up, load).
CLOCK_SLACK = timedelta(minutes=5)

pytestmark = pytest.mark.worker


@dataclass
class Skewed:
    """gunicorn and a Celery worker running `skew` off the true time."""

    skew: timedelta
    env: dict[str, str]
    base_url: str
    web: Process
    worker: Process
    queue: str  # the only queue this worker consumes, so no other test's worker takes its tasks


@pytest.fixture(scope="module")
def skewed_processes(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict[str, Skewed]]:  # type: ignore[no-untyped-def]
    """For each skew, gunicorn and a worker; all four start at once."""
    with django_db_blocker.unblock():
        database_url = pytest_database_url()
    started: dict[str, Skewed] = {}
    processes: list[Process] = []
    try:
        for name, skew in SKEWS.items():
            hours = int(skew.total_seconds() // 3600)
            env = skewed_clock_env(service_env(database_url, settings.CELERY_BROKER_URL), f"{hours:+d}h")
            logs = tmp_path_factory.mktemp(f"skewed-{name}")
            queue = f"faults-skewed-{uuid.uuid4().hex[:8]}"
            web, base_url = spawn_web(env, logs, workers=1)
            processes.append(web)
            worker = spawn_worker(env, logs, name="skewed-worker", concurrency=1, queues=queue)
            processes.append(worker)
            started[name] = Skewed(skew, env, base_url, web, worker, queue)
        for skewed in started.values():
            wait_for_web(skewed.web, skewed.base_url)
            wait_for_log(skewed.worker, " ready.")
        yield started
    finally:
        stop_all(processes)


@pytest.fixture(params=sorted(SKEWS))
def skewed(request, skewed_processes: dict[str, Skewed]) -> Skewed:  # type: ignore[no-untyped-def]
    return skewed_processes[request.param]


@pytest.fixture
def work(transactional_db):  # type: ignore[no-untyped-def]
    """A queue with one open task and two reviewers, each with an API token."""
    policy = PolicyFactory(key="harassment", version=None)
    # In force since yesterday: a version published moments ago is not yet in force for a web
    # process whose clock is behind (see test_a_version_published_just_now_is_in_force_everywhere).
    PolicyVersionFactory(policy=policy, effective_at=timezone.now() - timedelta(days=1))
    queue = QueueFactory(slug="skew-review", lease_seconds=LEASE_SECONDS)
    task = ReviewTaskFactory(policy=policy, queue=queue)
    reviewers = {}
    for name in ("ana", "ben"):
        user = UserFactory(username=name)
        queue.members.add(user)
        reviewers[name] = (user, token_create(name=name, scopes=["tasks:write"], actor=SYSTEM, user=user)[1])
    return queue, task, reviewers


def _post(skewed: Skewed, token: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.post(skewed.base_url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _answer(labels: list[str] | None = None) -> dict:
    return {"submission_id": str(uuid.uuid4()), "labels": labels or ["violating"]}


def _db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def _expire_lease(task: ReviewTask) -> None:
    """The reviewer's lease runs out: its expiry moves to just before the database's now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE reviewapp_reviewtask SET lease_expires_at = statement_timestamp() - interval '1 second' "
            "WHERE id = %s",
            [task.pk],
        )


def test_the_web_and_the_worker_really_run_on_a_shifted_clock(skewed: Skewed) -> None:
    """Guards the other tests: without a real skew they would prove nothing."""
    assert abs(wall_clock_of(skewed.env) - time.time() - skewed.skew.total_seconds()) < 60
    # The worker's own log lines carry its clock: "[2026-11-26 14:52:51,361: INFO/MainProcess] ..."
    stamp = re.search(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+: ", skewed.worker.log(), re.MULTILINE)
    assert stamp is not None, skewed.worker.log()[-2000:]
    logged = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S")
    assert abs(logged - datetime.now() - skewed.skew) < CLOCK_SLACK


def test_a_claim_and_its_renewal_follow_the_database_clock(skewed: Skewed, work) -> None:  # type: ignore[no-untyped-def]
    queue, task, reviewers = work
    _, token = reviewers["ana"]

    claim = _post(skewed, token, f"/api/v1/queues/{queue.pk}/claim")
    assert claim.status_code == 200, claim.text
    expires = datetime.fromisoformat(claim.json()["lease_expires_at"])
    assert abs(expires - (_db_now() + timedelta(seconds=LEASE_SECONDS))) < CLOCK_SLACK
    renewed = _post(skewed, token, f"/api/v1/tasks/{task.pk}/lease")
    assert renewed.status_code == 200, renewed.text  # ahead: a process-clock check would call it expired

    _expire_lease(task)
    refused = _post(skewed, token, f"/api/v1/tasks/{task.pk}/lease")
    assert refused.status_code == 409  # behind: a process-clock check would still call it live
    assert "expired" in refused.json()["detail"]


def test_an_answer_after_expiry_is_accepted_late_when_nobody_else_claimed(skewed: Skewed, work) -> None:  # type: ignore[no-untyped-def]
    queue, task, reviewers = work
    user, token = reviewers["ana"]
    assert _post(skewed, token, f"/api/v1/queues/{queue.pk}/claim").status_code == 200

    on_time = _post(skewed, token, f"/api/v1/tasks/{task.pk}/annotations", _answer())
    assert on_time.status_code == 201, on_time.text
    assert on_time.json()["late"] is False  # ahead: the process clock would call it late

    second = ReviewTaskFactory(policy=task.policy, queue=queue)
    assert _post(skewed, token, f"/api/v1/queues/{queue.pk}/claim").json()["id"] == second.pk
    _expire_lease(second)
    late = _post(skewed, token, f"/api/v1/tasks/{second.pk}/annotations", _answer())
    assert late.status_code == 201, late.text
    assert late.json()["late"] is True  # behind: the process clock would call it on time
    assert Annotation.objects.get(task=second, reviewer=user).late


def test_an_answer_after_expiry_is_refused_once_another_reviewer_claimed(skewed: Skewed, work) -> None:  # type: ignore[no-untyped-def]
    queue, task, reviewers = work
    ana, ana_token = reviewers["ana"]
    ben, ben_token = reviewers["ben"]
    assert _post(skewed, ana_token, f"/api/v1/queues/{queue.pk}/claim").json()["id"] == task.pk
    assert _post(skewed, ben_token, f"/api/v1/queues/{queue.pk}/claim").status_code == 204  # held by Ana

    _expire_lease(task)
    taken = _post(skewed, ben_token, f"/api/v1/queues/{queue.pk}/claim")
    assert taken.status_code == 200 and taken.json()["id"] == task.pk  # behind: still Ana's by the process clock
    answer = _answer(["not_violating"])
    refused = _post(skewed, ana_token, f"/api/v1/tasks/{task.pk}/annotations", answer)
    assert refused.status_code == 409
    assert "another reviewer now has this item" in refused.json()["detail"]
    assert "kept in the audit log" in refused.json()["detail"]
    escalated = _post(skewed, ana_token, f"/api/v1/tasks/{task.pk}/escalate", {"note": "unsure"})
    assert escalated.status_code == 409

    kept = AuditEvent.objects.get(action="annotation.rejected", object_id=str(task.pk), actor_id=ana.pk).after
    assert kept is not None
    assert kept["submission_id"] == answer["submission_id"]
    assert kept["labels"] == ["not_violating"]
    accepted = _post(skewed, ben_token, f"/api/v1/tasks/{task.pk}/annotations", _answer())
    assert accepted.status_code == 201 and accepted.json()["late"] is False
    assert list(Annotation.objects.filter(task=task).values_list("reviewer", flat=True)) == [ben.pk]


def test_the_sweep_in_a_skewed_worker_releases_only_expired_leases(skewed: Skewed, work) -> None:  # type: ignore[no-untyped-def]
    queue, held, reviewers = work
    ana, ana_token = reviewers["ana"]
    _, ben_token = reviewers["ben"]
    expired = ReviewTaskFactory(policy=held.policy, queue=queue, priority=0.5)
    assert _post(skewed, ana_token, f"/api/v1/queues/{queue.pk}/claim").json()["id"] == held.pk
    assert _post(skewed, ben_token, f"/api/v1/queues/{queue.pk}/claim").json()["id"] == expired.pk
    _expire_lease(expired)

    sweep_expired_leases.apply_async(queue=skewed.queue)
    wait_until(
        lambda: AuditEvent.objects.filter(action="task.lease_expired", object_id=str(expired.pk)).exists(),
        timeout=60,
        what="the skewed worker sweeping",
    )  # behind: by the worker's clock this lease has hours left
    expired.refresh_from_db()
    held.refresh_from_db()
    assert expired.leased_by_id is None
    assert held.leased_by_id == ana.pk  # ahead: by the worker's clock this live lease ran out hours ago
    assert not AuditEvent.objects.filter(action="task.lease_expired", object_id=str(held.pk)).exists()

    late = _post(skewed, ben_token, f"/api/v1/tasks/{expired.pk}/annotations", _answer())
    assert late.status_code == 201 and late.json()["late"] is True


@pytest.mark.parametrize("skewed", ["behind"], indirect=True)  # ahead, it is in force either way
def test_a_version_published_just_now_is_in_force_everywhere(skewed: Skewed, work) -> None:  # type: ignore[no-untyped-def]
    queue, task, reviewers = work
    _, token = reviewers["ana"]
    PolicyVersionFactory(policy=task.policy, number=2, effective_at=_db_now())
    claimed = _post(skewed, token, f"/api/v1/queues/{queue.pk}/claim")
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["policy_version"]["number"] == 2
