"""`make run`, `make manage` and `make stop` through their real path: `python -m tools.stack run`
on a free port with its own state folder (REVIEWAPP_RUN_DIR) and its own project-local PostgreSQL
and Redis, then `manage` against it, then `stop`, after which no process it started may remain.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 600.0  # migrate and seed on a busy two-core machine
CHILDREN = ("web", "worker", "beat")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(run_dir: Path, port: int) -> dict[str, str]:
    """The environment of a fresh shell: no services named, so `run` starts its own."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DJANGO_SECRET_KEY", None)
    env.update(
        REVIEWAPP_RUN_DIR=str(run_dir),
        REVIEWAPP_MODEL_DIR=str(run_dir / "models"),
        REVIEWAPP_EXPORT_DIR=str(run_dir / "exports"),
        REVIEWAPP_NO_DEFAULT_SERVICES="1",
        PORT=str(port),
    )
    return env


def group_members(pgids: set[int]) -> list[str]:
    """Live processes (not zombies) whose process group is one of `pgids`, as 'pid (comm)'."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) in pgids:
            found.append(f"{stat.parent.name} ({raw[raw.index('(') + 1 : raw.rindex(')')]})")
    return found


def pid_alive(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return raw[raw.rindex(")") + 2] != "Z"


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@dataclass
class Running:
    port: int
    run_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def stack_run(tmp_path: Path) -> Iterator[Running]:
    run_dir = tmp_path / "run"
    port = free_port()
    env = stack_env(run_dir, port)
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tools.stack", "run"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    running = Running(port, run_dir, env, proc, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while "stack  | ready: " not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, f"not ready in {START_TIMEOUT:.0f}s:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        yield running
    finally:
        # Whatever the test did: stop it all, and leave nothing behind for the next test.
        subprocess.run([sys.executable, "-m", "tools.stack", "stop"], cwd=ROOT, env=env, timeout=180, check=False)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        pg = run_dir / "pg"
        if pg.is_symlink():  # a temp path too long for a socket: its files went to a folder of their own
            shutil.rmtree(pg.resolve(), ignore_errors=True)


def stack(running: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.stack", *args],
        cwd=ROOT, env=running.env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_run_then_manage_then_stop_leaves_no_process(stack_run: Running) -> None:
    run_dir, port = stack_run.run_dir, stack_run.port
    # "ready" means the first page answers: the login page right after it.
    status, body = get(port, "/accounts/login/")
    assert status == 200 and b"password" in body.lower()

    env_file = run_dir / "env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    recorded = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    assert set(recorded) == {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DJANGO_DEBUG"}
    local_pg_port = int((run_dir / "pg" / "port").read_text())
    assert f"127.0.0.1:{local_pg_port}/" in recorded["DATABASE_URL"]

    # `manage` works on the running instance's database even from a shell that names another one.
    shell = {**stack_run.env, "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/elsewhere"}
    command = ["manage", "create_service_token", "--name", "reader", "--scope", "items:read"]
    created = subprocess.run(
        [sys.executable, "-m", "tools.stack", *command],
        cwd=ROOT, env=shell, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert "using the database, broker and secret key of the running `make run`" in created.stderr
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("rva_")
    status, body = get(port, "/api/v1/items?source=none&external_id=none", {"Authorization": f"Bearer {secret}"})
    assert status == 404, body  # authenticated and authorised: the item just does not exist
    status, _ = get(port, "/api/v1/items?source=none&external_id=none", {"Authorization": "Bearer rva_wrong"})
    assert status == 401

    pgids = {stack_run.proc.pid}
    for name in CHILDREN:
        pgids.add(int((run_dir / f"{name}.pid").read_text().split()[0]))
    pg_pid = int((run_dir / "pg" / "data" / "postmaster.pid").read_text().splitlines()[0])
    redis_pid = int((run_dir / "redis" / "redis.pid").read_text())
    assert group_members(pgids) and pid_alive(pg_pid) and pid_alive(redis_pid)

    stopped = stack(stack_run, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stack_run.proc.wait(timeout=60) == 0, stack_run.log.read_text()[-4000:]
    assert group_members(pgids) == []
    assert not pid_alive(pg_pid) and not pid_alive(redis_pid)
    assert not any((run_dir / name).exists() for name in ("run.pid", "env", *(f"{c}.pid" for c in CHILDREN)))
    assert "nothing of the project was running" in stack(stack_run, "stop").stderr


@pytest.mark.slow
def test_stop_also_stops_children_of_a_run_that_was_killed(stack_run: Running) -> None:
    run_dir = stack_run.run_dir
    pgids = {int((run_dir / f"{name}.pid").read_text().split()[0]) for name in CHILDREN}
    os.kill(stack_run.proc.pid, signal.SIGKILL)  # no chance to stop its children
    stack_run.proc.wait()
    assert group_members(pgids)

    stopped = stack(stack_run, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert group_members(pgids) == []
    assert "left behind by a `run` that is gone" in stopped.stderr


def test_manage_py_without_secret_key_says_one_line_where_to_go() -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "manage.py: DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off. "
        "For the instance `make run` runs: make manage ARGS=migrate"
    ]


def test_manage_without_arguments_prints_usage() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.stack", "manage"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "manage ARGS..." in result.stderr


def test_env_file_round_trips_values_that_need_quoting(tmp_path: Path) -> None:
    script = """
import json, os, sys
from tools.stack import cli, common
common.pidfile_write(common.RUN_PIDFILE, os.getpid())
cli.run_env_write({"DATABASE_URL": "postgresql://u@h:1/d", "DJANGO_SECRET_KEY": "a b'c $d", "DJANGO_DEBUG": "1"})
print(json.dumps(cli.run_env_read()[1]))
"""
    env = {**os.environ, "REVIEWAPP_RUN_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DATABASE_URL": "postgresql://u@h:1/d",
        "DJANGO_SECRET_KEY": "a b'c $d",
        "DJANGO_DEBUG": "1",
    }
