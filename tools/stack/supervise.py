"""`run`'s child processes (web, worker, beat): their commands, environment, signals and supervision."""

from __future__ import annotations

import http.client
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from .common import (
    ROOT,
    RUN_DIR,
    SECRET_KEY_FILE,
    Interrupted,
    Services,
    StackError,
    emit,
    log,
    pidfile_write,
    port_accepts,
)

CHILD_STOP_TIMEOUT = 15.0
# Pages requested before `run` says "ready": the first a visitor opens (the home page redirects an
# anonymous visitor to the login page). Each must answer without a server error.
WARM_UP_PATHS = ("/", "/accounts/login/")
WARM_UP_REQUEST_TIMEOUT = 10.0


def child_pidfile(name: str) -> Path:
    """`.run/<name>.pid`: the child's pid, which is also its process group (own session)."""
    return RUN_DIR / f"{name}.pid"


@dataclass
class Child:
    """A long-running process of `run`, in its own process group so we control its shutdown."""

    name: str
    proc: subprocess.Popen[bytes]
    reader: threading.Thread


def pump_output(prefix: str, stream: IO[bytes]) -> None:
    """Copy a child's output to our stdout, one prefixed line at a time."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        emit(sys.stdout, f"{prefix} | {line}")  # keeps draining even if stdout is gone
    stream.close()


def start_child(name: str, cmd: Sequence[str], env: dict[str, str]) -> Child:
    """Start a child in a new session: the terminal's Ctrl-C reaches only us, and we stop it."""
    proc = subprocess.Popen(
        list(cmd),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pidfile_write(child_pidfile(name), proc.pid)
    assert proc.stdout is not None
    reader = threading.Thread(target=pump_output, args=(name.ljust(6), proc.stdout), daemon=True)
    reader.start()
    return Child(name, proc, reader)


def signal_group(proc: subprocess.Popen[bytes], signum: int) -> bool:
    """Signal the child's whole process group (pool workers included); False if it is empty."""
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        return False
    return True


def stop_children(children: list[Child]) -> None:
    """SIGTERM every child group, wait, then SIGKILL whatever is left (stragglers included)."""
    for child in children:
        if child.proc.poll() is None:
            signal_group(child.proc, signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_TIMEOUT
    for child in children:
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log(f"{child.name} did not stop in {CHILD_STOP_TIMEOUT:.0f}s; killing it")
            signal_group(child.proc, signal.SIGKILL)
            child.proc.wait()
    for child in children:
        # The group leader is gone; give orphaned group members a moment, then kill them.
        for _ in range(20):
            if not signal_group(child.proc, 0):
                break
            time.sleep(0.1)
        else:
            log(f"killing processes left over from {child.name}")
            signal_group(child.proc, signal.SIGKILL)
        child.reader.join(timeout=2)
        child_pidfile(child.name).unlink(missing_ok=True)


class StopSignals:
    """Turns SIGINT/SIGTERM/SIGHUP into a stop request for `run`.

    During setup (migrate, seeding) the handler raises Interrupted to abandon the step; while
    supervising children it only sets a flag that the supervision loop checks.
    """

    def __init__(self) -> None:
        self.requested = False
        self.raise_on_signal = True

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if not self.requested:
            log(f"received {signal.Signals(signum).name}; stopping")
        self.requested = True
        if self.raise_on_signal:
            self.raise_on_signal = False
            raise Interrupted()


def run_step(args: Sequence[str], env: dict[str, str]) -> None:
    """A setup command such as `manage.py migrate`, output straight to the terminal."""
    log("$ " + " ".join(shlex.quote(part) for part in args))
    started = time.monotonic()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(args)}` failed with exit code {result.returncode}")
    log(f"{args[1] if len(args) > 1 else args[0]} took {time.monotonic() - started:.1f}s")


def warm_up(port: int) -> str | None:
    """GET each of WARM_UP_PATHS once; None when all answered below 500, else what went wrong.

    The first request of a fresh web process pays for its database connection and its first
    templates; paying it here means the first visitor after "ready" does not.
    """
    for path in WARM_UP_PATHS:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WARM_UP_REQUEST_TIMEOUT)
        try:
            connection.request("GET", path, headers={"Host": "127.0.0.1"})
            response = connection.getresponse()
            response.read()
        except OSError as exc:
            return f"GET {path}: {exc}"
        finally:
            connection.close()
        if response.status >= 500:
            return f"GET {path}: HTTP {response.status}"
    return None


def supervise(children: list[Child], stop: StopSignals, port: int) -> int:
    """Wait until a stop is requested (exit 0) or a child dies (exit 1).

    "ready" is announced once the web server answers the warm-up requests, not merely once its
    port accepts connections (gunicorn's master listens before its workers can answer).
    """
    announced = False
    last_problem = ""
    started = time.monotonic()
    while not stop.requested:
        for child in children:
            code = child.proc.poll()
            if code is not None:
                log(f"{child.name} exited unexpectedly (exit code {code}); stopping the rest")
                return 1
        if not announced and port_accepts(port, timeout=0.2):
            problem = warm_up(port)
            if problem is None:
                took = time.monotonic() - started
                log(f"ready: http://127.0.0.1:{port}/ (web, worker and beat started {took:.1f}s ago)")
                logins = RUN_DIR / "demo-logins.txt"  # where seed_demo also keeps them
                kept = f"; they are kept in {logins}" if logins.exists() else ""
                log(f"demo logins were printed above by seed_demo when first created{kept}")
                log("press Ctrl-C (or run `make stop` elsewhere) to stop everything")
                announced = True
                continue
            if problem != last_problem:
                log(f"web is not answering yet ({problem}); retrying")
                last_problem = problem
        time.sleep(0.3)
    return 0


WORKER_QUEUES = "celery,ingest,scoring,training,sync,llm"


def web_command(port: int, *, workers: int = 2) -> list[str]:
    """The production web server: gunicorn's sync workers on 127.0.0.1:port.

    --preload: the master imports the application (Django, every URLconf and view) once, before
    it listens, and forks workers that already hold it; a worker never starts cold, and a worker
    replaced after a crash is ready at once.
    """
    gunicorn = [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--preload"]
    return [*gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--access-logfile", "-"]


def worker_command(*, concurrency: int = 2, queues: str = WORKER_QUEUES) -> list[str]:
    """A Celery worker consuming every queue the project routes tasks to."""
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    return [*celery, "worker", "-l", "info", "-Q", queues, "--concurrency", str(concurrency)]


def beat_command(state_dir: Path) -> list[str]:
    """Celery beat. Its schedule lives in PostgreSQL (django-celery-beat's DatabaseScheduler,
    named in settings); `state_dir` only keeps beat's local state file."""
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    return [*celery, "beat", "-l", "info", "-s", str(state_dir / "celerybeat-schedule")]


def secret_key_for_run() -> str:
    """A random dev secret key, generated once and kept in `.run/secret_key` (0600)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    if SECRET_KEY_FILE.exists():
        SECRET_KEY_FILE.chmod(0o600)
        key = SECRET_KEY_FILE.read_text().strip()
        if key:
            return key
        SECRET_KEY_FILE.unlink()
    key = secrets.token_urlsafe(50)
    fd = os.open(SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def child_env(services: Services) -> dict[str, str]:
    """The environment shared by every child: service URLs, unbuffered output, venv on PATH."""
    env = dict(os.environ)
    env["DATABASE_URL"] = services.database_url
    env["CELERY_BROKER_URL"] = services.broker_url
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env
