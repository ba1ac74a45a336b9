"""PostgreSQL and Redis restarting under load: the web, the worker and beat carry on by themselves,
clients get a retryable 503 rather than a 500, and nothing acknowledged is lost.

Every test here runs private servers (tests/faults/services.py): the shared PostgreSQL on 5432
and Redis on 6379 are never restarted.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
import requests

from tests.faults.services import (
    BEAT_PROBE,
    FaultStack,
    Load,
    LoadReport,
    expire_a_lease,
    fault_stack,
    lease_released,
    missing_after_restart,
    queued_tasks,
    retryable_problem,
    send_task,
    unresolved_completed_tasks,
    wait_for_log,
    wait_until,
)

# Requests that start this long after a server is back must all succeed (measurement slack only).
RECOVERY_GRACE = 0.25
SCHEDULE_SQL = (
    "SELECT p.name, p.task, p.enabled, i.every, i.period FROM django_celery_beat_periodictask p "
    "JOIN django_celery_beat_intervalschedule i ON i.id = p.interval_id ORDER BY p.name"
)


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> FaultStack:  # type: ignore[misc]
    with fault_stack(tmp_path_factory.mktemp("faults")) as running:
        yield running


def _warm_up(load: Load, *, submissions: int = 5, decisions: int = 30) -> None:
    wait_until(
        lambda: len(load.report.submissions) >= submissions and len(load.report.acknowledged_decisions) >= decisions,
        timeout=60,
        what="load getting going",
    )


def _keeps_serving_after(load: Load, moment: float, *, successes: int = 10) -> None:
    """Wait until requests started after `moment` have succeeded, for each kind of request."""

    def served() -> bool:
        done = [a for a in load.report.attempts if a.started > moment and a.status is not None and a.status < 300]
        return all(sum(1 for a in done if a.kind == kind) >= successes for kind in ("ingest", "claim", "submit"))

    wait_until(served, timeout=60, what="web serving every kind of request again")


def _check_clients_saw_only_success_or_retry(report: LoadReport) -> None:
    assert not report.unexpected, report.unexpected
    assert set(report.statuses()) <= {200, 201, 204, 503}, report.statuses()


def _check_recovered(report: LoadReport, back: float) -> None:
    late = report.failed_after(back + RECOVERY_GRACE)
    assert not late, f"{len(late)} requests failed after the server was back, first: {late[0]}"


def test_postgres_restart_under_load_loses_nothing_acknowledged(faults: FaultStack) -> None:
    """`pg_ctl restart -m fast` mid-load terminates every open session.

    Requests caught by it answer 503 with Retry-After (their transaction rolled back) and succeed
    when retried; requests after it succeed at once, because connections are health-checked
    before reuse (CONN_HEALTH_CHECKS); every decision and annotation acknowledged with a 2xx is
    in the database; the worker and beat carry on without being restarted.
    """
    with Load(faults.base_url, faults.setup, label="pg") as load:
        _warm_up(load)
        faults.database.restart()
        back = time.monotonic()
        _keeps_serving_after(load, back)
    report = load.stop()

    _check_clients_saw_only_success_or_retry(report)
    _check_recovered(report, back)
    assert report.unavailable(), "no request was caught by the restart: the test did not exercise it"
    assert missing_after_restart(faults.database, report) == {"decisions": [], "submissions": []}
    faults.check_alive()
    # The worker resolves every answered task (those it was handling during the restart are retried).
    wait_until(lambda: unresolved_completed_tasks(faults.database) == 0, timeout=90, what="worker resolving tasks")
    # Beat still reads its schedule from PostgreSQL and the worker still runs what it sends.
    task_id = expire_a_lease(faults.database)
    wait_until(lambda: lease_released(faults.database, task_id), timeout=30, what="beat's lease sweep running")


def test_while_postgres_is_down_api_and_pages_answer_503_with_retry_after(faults: FaultStack) -> None:
    """API clients get JSON, people get a short page, and both get Retry-After, not a 500."""
    token = faults.setup["ingest_token"]
    row: dict[str, Any] = {"source": "faults", "external_id": "while-down", "text": "x", "policy": "harassment",
                           "model_name": "tox", "model_version": "1", "score": 0.5}  # fmt: skip
    csrf = "faults" + "0" * 26  # any 32-character secret, sent as cookie and form field alike
    with faults.database.down():
        api = requests.post(
            f"{faults.base_url}/api/v1/decisions",
            json={"decisions": [row]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        page = requests.post(
            f"{faults.base_url}/accounts/login/",
            data={"username": "faults-reviewer-0", "password": "wrong", "csrfmiddlewaretoken": csrf},
            headers={"Cookie": f"csrftoken={csrf}", "Referer": faults.base_url},
            timeout=30,
        )
        ready = requests.get(f"{faults.base_url}/readyz", timeout=30)
    assert api.status_code == 503
    assert retryable_problem(api) is None
    assert page.status_code == 503, page.text[:500]
    assert page.headers["Content-Type"].startswith("text/html")
    assert int(page.headers["Retry-After"]) > 0
    assert "Please retry in a few seconds" in page.text
    assert ready.status_code == 503 and ready.json()["checks"]["database"].startswith("error")

    again = requests.post(
        f"{faults.base_url}/api/v1/decisions", json={"decisions": [row]}, headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )  # fmt: skip
    assert again.status_code == 200, again.text
    assert requests.get(f"{faults.base_url}/readyz", timeout=30).status_code == 200


def test_redis_restart_keeps_queued_tasks_and_the_beat_schedule(faults: FaultStack) -> None:
    """Redis restarted mid-load, with the worker stopped so that tasks wait in the queue.

    The broker's guarantee: a message that Redis acknowledged survives a restart only if Redis
    persists it. This Redis (like production should, see docs/operations.md) runs
    with `appendonly yes`, so every queued message is in its append-only file and comes back;
    without persistence (the shared development Redis runs with `--save "" --appendonly no`) a
    restart empties every queue. A task whose enqueue failed while Redis was down never reached
    the queue: the request that wanted it answered 503 after its data was committed, and the
    periodic sweep (`labeling.resolve_due_tasks`) does that work instead.

    Beat's schedule lives in PostgreSQL (django-celery-beat's DatabaseScheduler), so a Redis
    restart leaves it unchanged and beat keeps sending once Redis is back.
    """
    schedule = faults.database.fetch(SCHEDULE_SQL)
    faults.worker.stop()
    with Load(faults.base_url, faults.setup, label="redis") as load:
        _warm_up(load)
        before = faults.broker.run_id()
        faults.broker.restart()
        back = time.monotonic()
        assert faults.broker.run_id() != before
        _keeps_serving_after(load, back)
    report = load.stop()

    _check_clients_saw_only_success_or_retry(report)
    _check_recovered(report, back)
    assert missing_after_restart(faults.database, report) == {"decisions": [], "submissions": []}
    # A 201 means the submission's resolve message was enqueued before the answer was sent.
    enqueued = {task_id for task_id, status in report.submissions.values() if status == 201}
    waiting = {args[0] for name, args in queued_tasks(faults.broker) if name == "labeling.resolve_task"}
    assert enqueued and enqueued <= waiting, f"lost from the queue: {sorted(enqueued - waiting)}"
    # Beat, never restarted, sends again after the restart; its schedule is as it was.
    probes = sum(1 for name, _ in queued_tasks(faults.broker) if name == "reviewapp.sweep_expired_leases")
    wait_until(
        lambda: (
            sum(1 for name, _ in queued_tasks(faults.broker) if name == "reviewapp.sweep_expired_leases") >= probes + 2
        ),
        timeout=30,
        what=f"beat sending {BEAT_PROBE} after the restart",
    )
    faults.beat.check_alive()
    faults.web.check_alive()
    assert faults.database.fetch(SCHEDULE_SQL) == schedule

    faults.replace_worker()
    task_id = expire_a_lease(faults.database)
    wait_until(lambda: lease_released(faults.database, task_id), timeout=60, what="beat's lease sweep running")
    wait_until(lambda: not _queued_resolutions(faults) & enqueued, timeout=60, what="the worker draining the queue")
    send_task(faults.broker, "labeling.resolve_due_tasks")
    wait_until(lambda: unresolved_completed_tasks(faults.database) == 0, timeout=60, what="every answer resolved")


def test_a_worker_holding_a_reserved_task_survives_a_redis_restart(faults: FaultStack) -> None:
    """A worker always holds messages it has not acknowledged: countdown tasks (each answer's
    resolution waits out the undo window) and acks_late tasks it is running. Redis restarting
    then must not stop it: it reconnects and the messages come back to the queue."""
    held = send_task(faults.broker, "reviewapp.sweep_expired_leases", countdown=30)
    wait_for_log(faults.worker, f"[{held}] received")
    try:
        faults.broker.restart()
        time.sleep(5)  # the worker notices the lost connection within a second
        faults.worker.check_alive()
        probe = send_task(faults.broker, "reviewapp.sweep_expired_leases")
        wait_for_log(faults.worker, f"[{probe}] succeeded", timeout=60)
    finally:
        if not faults.worker.alive():
            faults.replace_worker()


def _queued_resolutions(faults: FaultStack) -> set[int]:
    return {args[0] for name, args in queued_tasks(faults.broker) if name == "labeling.resolve_task"}


def _queued_probes(faults: FaultStack) -> int:
    return sum(1 for name, _ in queued_tasks(faults.broker) if name == "reviewapp.sweep_expired_leases")


@pytest.mark.soak
def test_soak_repeated_restarts_under_load(faults: FaultStack) -> None:
    """Several minutes of load with PostgreSQL and Redis restarted in turn, nothing restarted by
    hand in between: after every restart the web serves again, and at the end every acknowledged
    decision and answer is stored and every answered task resolved."""
    cycles = int(os.environ.get("REVIEWAPP_SOAK_CYCLES", "10"))
    restarts = {"PostgreSQL": 0, "Redis": 0}
    started = time.monotonic()
    with Load(faults.base_url, faults.setup, label="soak", ingest_clients=3) as load:
        _warm_up(load)
        for cycle in range(cycles):
            server = "PostgreSQL" if cycle % 2 == 0 else "Redis"
            (faults.database if server == "PostgreSQL" else faults.broker).restart()
            restarts[server] += 1
            back = time.monotonic()
            _keeps_serving_after(load, back)
            time.sleep(15)
            _check_recovered(load.report, back)  # before the next restart
            faults.check_alive()
    report = load.stop()

    _check_clients_saw_only_success_or_retry(report)
    assert missing_after_restart(faults.database, report) == {"decisions": [], "submissions": []}
    # Resolve messages the worker had reserved when Redis went away return after the visibility
    # timeout; the periodic sweep resolves their tasks before that.
    send_task(faults.broker, "labeling.resolve_due_tasks")
    wait_until(lambda: unresolved_completed_tasks(faults.database) == 0, timeout=120, what="every answer resolved")
    faults.check_alive()
    print(
        f"\nsoak: {restarts['PostgreSQL']} PostgreSQL and {restarts['Redis']} Redis restarts in "
        f"{time.monotonic() - started:.0f}s under load; {len(report.attempts)} requests, "
        f"{len(report.unavailable())} answered 503 (retried), 0 other errors; "
        f"{len(report.acknowledged_decisions)} decisions and {len(report.submissions)} answers acknowledged, "
        f"all stored; every answered task resolved; web, worker and beat never restarted"
    )
