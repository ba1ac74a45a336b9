"""What every part of the stack shares: paths under .run/, errors, output, ports, processes."""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[2]  # the repository: tools/stack/common.py
# Everything the stack keeps at run time. REVIEWAPP_RUN_DIR moves it (a test's own `run` uses a
# temp folder, so that it never meets the developer's servers or pid files).
RUN_DIR = Path(os.environ.get("REVIEWAPP_RUN_DIR") or ROOT / ".run").resolve()
SECRET_KEY_FILE = RUN_DIR / "secret_key"
# Written by `run` while it runs: its own pid, each child's, and the environment it gave them.
RUN_PIDFILE = RUN_DIR / "run.pid"
RUN_ENV_FILE = RUN_DIR / "env"
TEST_SECRET_KEY = "reviewapp-tests-only-this-key-is-public-and-not-a-secret"  # noqa: S105 (public on purpose)
READY_TIMEOUT = 30.0


# Reentrant: a signal handler may log while the main thread is inside log().
OUTPUT_LOCK = threading.RLock()


class StackError(Exception):
    """A problem the user has to act on; printed without a traceback."""


class Interrupted(BaseException):
    """Raised by our signal handler to abandon a setup step when the user stops `run`."""


def emit(stream: IO[str], line: str) -> None:
    """Write one line; a closed terminal or pipe (say `| tee` hit by Ctrl-C) must never
    interrupt the shutdown that is usually in progress at that moment."""
    with OUTPUT_LOCK:
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


def log(message: str) -> None:
    """Progress goes to stderr, so that `eval "$(... services)"` sees only the exports."""
    emit(sys.stderr, f"stack  | {message}")


def tail(path: Path, lines: int = 20) -> str:
    """The end of a log file, for error messages that should explain themselves."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def read_int(path: Path) -> int | None:
    """Read a small integer state file such as `.run/pg/port`; None when absent or garbled."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- ports & processes


def port_accepts(port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:port now.

    SO_REUSEADDR, as PostgreSQL and Redis use it: a port that the previous run's server left
    in TIME_WAIT counts as free, so a restart keeps its port; a listening socket does not.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(state_file: Path, preferred: int) -> int:
    """Pick the port used last time, else `preferred`, else the next free one; remember it."""
    candidates: list[int] = []
    previous = read_int(state_file)
    if previous:
        candidates.append(previous)
    candidates.extend(range(preferred, preferred + 200))
    for port in candidates:
        if port_is_free(port):
            state_file.write_text(f"{port}\n")
            return port
    raise StackError(f"no free port found in {preferred}..{preferred + 199}")


def process_alive(pid: int, names: Sequence[str]) -> bool:
    """Whether `pid` is a live (non-zombie) process with one of `names`.

    Checking the name guards against a stale pidfile whose pid now belongs to something else.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    stat = Path(f"/proc/{pid}/stat")
    try:
        # Format: "pid (comm) state ..."; comm may contain spaces, so split at the last ')'.
        raw = stat.read_text()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust kill(0)
    except OSError:
        return True
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    state = raw[raw.rindex(")") + 2 :].split(" ", 1)[0]
    return state != "Z" and comm in names


def wait_for_exit(pid: int, names: Sequence[str], timeout: float) -> bool:
    """Poll until `pid` is gone; True if it went away in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid, names):
            return True
        time.sleep(0.1)
    return not process_alive(pid, names)


def process_start_time(pid: int) -> str:
    """The kernel's start time of `pid` (clock ticks since boot), "" when unknown (no procfs).

    With the pid it names one process for good: a pid reused later has another start time.
    """
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return raw[raw.rindex(")") + 2 :].split(" ")[19]


def pidfile_write(path: Path, pid: int) -> None:
    """Record `pid` with its start time (mode 0600), so a later reader can tell it is the same process."""
    path.parent.mkdir(parents=True, exist_ok=True)
    private_write(path, f"{pid} {process_start_time(pid)}\n")


def pidfile_live(path: Path) -> int | None:
    """The pid recorded in `path` if that very process still runs (not a zombie); else None,
    and a stale file is removed. Never names a process the project did not start."""
    try:
        fields = path.read_text().split()
        pid, started = int(fields[0]), (fields[1] if len(fields) > 1 else "")
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    except PermissionError:
        alive = True
    if alive and Path("/proc/self").exists():
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
            alive = raw[raw.rindex(")") + 2] != "Z" and process_start_time(pid) == started
        except OSError:
            alive = False
    if not alive:
        path.unlink(missing_ok=True)
        return None
    return pid


def private_write(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only (0600) from the first byte."""
    scratch = path.with_name(path.name + ".new")
    scratch.unlink(missing_ok=True)
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    scratch.replace(path)


def pip_install(*args: str) -> None:
    """Install an extra package into the virtualenv (never into the system Python)."""
    if sys.prefix == sys.base_prefix:
        raise StackError(
            f"need `pip install {' '.join(args)}` but this is not a virtualenv: run with .venv/bin/python (`make venv`)"
        )
    log(f"installing {' '.join(args)} into {sys.prefix}")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *args], check=True)
    importlib.invalidate_caches()


# --------------------------------------------------------------------------- service bookkeeping


@dataclass
class Services:
    """The URLs handed to children, and how to stop what this invocation started."""

    database_url: str = ""
    broker_url: str = ""
    stoppers: list[tuple[str, Callable[[], bool]]] = field(default_factory=list)

    def stop_started(self) -> None:
        """Stop only the servers this invocation started, newest first."""
        while self.stoppers:
            name, stop = self.stoppers.pop()
            try:
                if stop():
                    log(f"stopped {name}")
            except (OSError, subprocess.SubprocessError, StackError) as exc:
                # keep stopping the others
                log(f"could not stop {name}: {exc}")
