"""Start a real Celery worker process for tests, against the real broker and the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from config.celery import app

ROOT = Path(__file__).resolve().parent.parent
QUEUES = "celery,ingest,scoring,training,sync,llm"


def test_database_url() -> str:
    """The URL of the database pytest-django created, so the worker sees the test's rows."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgresql://{auth}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def celery_worker(log_path: Path, *, concurrency: int = 1) -> Iterator[subprocess.Popen]:
    """Run `celery worker` until the block exits; wait until it answers a ping."""
    name = f"test-{uuid.uuid4().hex[:8]}@localhost"
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
    }
    app.control.purge()  # tasks left by an earlier, interrupted run must not run against this database
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-n",
                name,
                "-Q",
                QUEUES,
                "--pool",
                "prefork",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_ready(process, name, log_path)
        yield process
    finally:
        _stop(process)


def _wait_until_ready(process: subprocess.Popen, name: str, log_path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        if app.control.ping(destination=[name], timeout=0.5):
            return
    _stop(process)
    raise RuntimeError(f"celery worker did not answer a ping in {timeout}s:\n{log_path.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll `predicate` until it returns something truthy; fail with a clear message on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def unacked_deliveries_older_than(seconds: float) -> bool:
    """True when the broker holds unacknowledged deliveries and the newest is older than `seconds`:
    what a worker starting with that visibility timeout needs to hand them out again. Reads kombu's
    Redis transport index (delivery tag → delivery time)."""
    with app.connection_for_write() as conn:
        newest = conn.default_channel.client.zrange("unacked_index", -1, -1, withscores=True)
    return bool(newest) and time.time() - newest[0][1] > seconds
