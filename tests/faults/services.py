"""Private servers and processes for fault tests, and the HTTP load that runs through the faults.

Fault tests restart PostgreSQL and Redis, so they never touch the shared servers: each test
module starts its own throwaway PostgreSQL and Redis on free ports in a temp folder (with
tools.stack's functions, the ones `make run` uses), migrates the database, and runs the
production processes against them: gunicorn, a Celery worker and Celery beat, configured by
the production settings module. Load comes from plain HTTP clients in threads, which behave
as the API asks clients to: a 503 is retried (same body, same submission id) and anything
else that is not a success is recorded as unexpected.

The seeding helpers at the bottom run inside a child process (`manage.py shell`) configured
for the private database; the test process itself stays on pytest-django's database.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from tools.stack import common, postgres, supervise
from tools.stack import redis as stack_redis

ROOT = common.ROOT
STOP_TIMEOUT = 20.0
# Generous: a first request imports the whole URLconf (torch, scikit-learn), which takes long on
# a busy two-core CI machine.
START_TIMEOUT = 180.0
# Clients pause this long before retrying a 503, instead of the Retry-After they were given,
# so that a test keeps load on the servers while they come back.
RETRY_PAUSE = 0.1
# A client gives up on one request after this long without any success (not a retry loop forever).
GIVE_UP_AFTER = 60.0
SEED_POLICY = "harassment"


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Any, *, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(interval)


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own in `home` (owned by the unprivileged `runner` as root)."""

    bindir: Path
    runner: postgres.RunAs
    home: Path
    port: int
    database: str = postgres.DB_NAME

    @property
    def url(self) -> str:
        return f"postgresql://{postgres.DB_USER}@127.0.0.1:{self.port}/{self.database}"

    @property
    def log_path(self) -> Path:
        return self.home / "log"

    def pg_ctl(self, *args: str) -> None:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.home / "data"), "-l", str(self.log_path), *args]
        result = self.runner.run(cmd, cwd=self.home)
        if result.returncode != 0:
            raise AssertionError(
                f"pg_ctl {' '.join(args)} failed:\n{result.stdout}{result.stderr}\n{common.tail(self.log_path)}"
            )

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: open sessions are terminated (their transactions roll back),
        committed data stays; returns once the server accepts connections again."""
        self.pg_ctl("restart", "-m", "fast", "-w", "-t", "60")
        postgres.wait_for_postgres(self.bindir, self.port, self.log_path)

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The server stopped (fast shutdown) for the duration of the block, then started again."""
        self.pg_ctl("stop", "-m", "fast", "-w")
        try:
            yield
        finally:
            postgres.pg_start(self.bindir, self.runner, self.home, self.port, durable=True)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb and start a durable PostgreSQL on a free port; stop it and delete it afterwards.

    Durable (fsync and synchronous commit on, as in production), so that "committed" means what
    it means in production when the server restarts.
    """
    runner = postgres.postgres_runner()
    # Under the system temp folder, not pytest's (0700 as root): the server's user must reach it.
    home = Path(tempfile.mkdtemp(prefix="reviewapp-faults-pg-"))
    (home / "socket").mkdir()
    if runner.uid is not None:
        postgres.give_to(runner, home)
        postgres.give_to(runner, home / "socket")
    server = None
    try:
        bindir = postgres.system_pg_bindir() or postgres.pip_pg_bindir()
        postgres.pg_initdb(bindir, runner, home)
        server = PrivatePostgres(bindir=bindir, runner=runner, home=home, port=free_port())
        postgres.pg_start(bindir, runner, home, server.port, durable=True)
        postgres.ensure_local_database(bindir, server.port, server.database)
        yield server
    finally:
        if server is not None and (home / "data" / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError):
                server.pg_ctl("stop", "-m", "fast", "-w")
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- Redis


@dataclass
class PrivateRedis:
    """A redis-server of our own, with an append-only file so that a restart keeps its data."""

    binary: Path
    directory: Path
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=5)

    def pid(self) -> int | None:
        pid = common.read_int(self.directory / "redis.pid")
        return pid if pid is not None and common.process_alive(pid, ("redis-server",)) else None

    def start(self) -> None:
        stack_redis.redis_start(self.binary, self.directory, self.port, appendonly=True)

    def stop(self) -> None:
        """SIGTERM: Redis writes and syncs its append-only file, then exits."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        if not common.wait_for_exit(pid, ("redis-server",), STOP_TIMEOUT):
            raise AssertionError(f"redis-server {pid} did not stop:\n{common.tail(self.directory / 'log')}")

    def restart(self) -> None:
        self.stop()
        self.start()

    def run_id(self) -> str:
        """Changes with every start of the server: proof that a restart really happened."""
        return str(self.client().info("server")["run_id"])


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    directory = Path(tempfile.mkdtemp(prefix="reviewapp-faults-redis-"))
    server = PrivateRedis(binary=stack_redis.find_redis_server(), directory=directory, port=free_port())
    try:
        server.start()
        yield server
    finally:
        with contextlib.suppress(AssertionError, OSError):
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------- processes


def service_env(database_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production process (web, worker, beat, manage.py) on these servers.

    Production settings (config.settings, DEBUG off) with what plain-HTTP loopback needs.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST_", "REVIEWAPP_CACHE"))}
    env.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY") or common.TEST_SECRET_KEY,
        DJANGO_DEBUG="0",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        REVIEWAPP_LOG_FORMAT="plain",
        REVIEWAPP_API_RATE="1000000/min",  # load tests measure recovery, not rate limits
        # gunicorn kills a worker silent for 30 s, as a first request on a busy machine can be.
        GUNICORN_CMD_ARGS="--timeout 120",
        PYTHONUNBUFFERED="1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    )
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run `manage.py ARGS` in a child; its stdout, or AssertionError with its output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result.stdout


@dataclass
class Process:
    """A long-running child in its own process group, its output in `log_path`."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise AssertionError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM (a warm shutdown for Celery), SIGKILL after STOP_TIMEOUT."""
        stop_all([self])


def stop_all(processes: Sequence[Process]) -> None:
    """Stop several processes at once: SIGTERM to each leader (gunicorn's master and Celery's
    main process stop their children gracefully), then wait; SIGKILL after STOP_TIMEOUT."""
    for process in processes:
        if process.popen.poll() is None:
            process.popen.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        try:
            process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.popen.pid, signal.SIGKILL)  # pool children left behind by the leader


def start_process(name: str, cmd: Sequence[str], env: dict[str, str], log_dir: Path) -> Process:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(cmd), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    return Process(name, popen, log_path)


def wait_for_log(process: Process, text: str, *, timeout: float = START_TIMEOUT, since: int = 0) -> None:
    """Until `text` appears in the process's log after byte offset `since`; fail if it exits."""

    def seen() -> bool:
        process.check_alive()
        return text in process.log()[since:]

    wait_until(seen, timeout=timeout, what=f"{process.name} logging {text!r}")


def spawn_web(env: dict[str, str], log_dir: Path, *, workers: int = 2) -> tuple[Process, str]:
    """gunicorn as `make run` starts it, on a free port; returns the process and its base URL."""
    port = free_port()
    return start_process("web", supervise.web_command(port, workers=workers), env, log_dir), f"http://127.0.0.1:{port}"


def wait_for_web(web: Process, base_url: str) -> None:
    def serving() -> bool:
        web.check_alive()
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"{base_url}/healthz", timeout=2).status_code == 200
        return False

    wait_until(serving, timeout=START_TIMEOUT, what="gunicorn answering /healthz")


def spawn_worker(
    env: dict[str, str],
    log_dir: Path,
    *,
    name: str = "worker",
    concurrency: int = 2,
    queues: str = supervise.WORKER_QUEUES,
) -> Process:
    """A Celery worker as `make run` starts it, with a node name of its own."""
    node = f"{name}-{uuid.uuid4().hex[:8]}@localhost"
    cmd = [*supervise.worker_command(concurrency=concurrency, queues=queues), "-n", node]
    return start_process(name, [*cmd, "--without-gossip", "--without-mingle"], env, log_dir)


def spawn_beat(env: dict[str, str], log_dir: Path) -> Process:
    return start_process("beat", supervise.beat_command(log_dir), env, log_dir)


def start_web(env: dict[str, str], log_dir: Path, *, workers: int = 2) -> tuple[Process, str]:
    """spawn_web, returning once it serves."""
    web, base_url = spawn_web(env, log_dir, workers=workers)
    _started(web, lambda: wait_for_web(web, base_url))
    return web, base_url


def start_worker(
    env: dict[str, str],
    log_dir: Path,
    *,
    name: str = "worker",
    concurrency: int = 2,
    queues: str = supervise.WORKER_QUEUES,
) -> Process:
    """spawn_worker, returning once it consumes."""
    worker = spawn_worker(env, log_dir, name=name, concurrency=concurrency, queues=queues)
    _started(worker, lambda: wait_for_log(worker, " ready."))
    return worker


def _started(process: Process, wait: Any) -> None:
    try:
        wait()
    except BaseException:
        process.stop()
        raise


# --------------------------------------------------------------------------- the whole stack


@dataclass
class FaultStack:
    """Private PostgreSQL and Redis with the production processes running against them."""

    database: PrivatePostgres
    broker: PrivateRedis
    env: dict[str, str]
    log_dir: Path
    setup: dict
    web: Process
    base_url: str
    worker: Process
    beat: Process

    def processes(self) -> list[Process]:
        return [self.web, self.worker, self.beat]

    def check_alive(self) -> None:
        """Nothing was restarted by hand: the original web, worker and beat still run."""
        for process in self.processes():
            process.check_alive()

    def replace_worker(self) -> None:
        """Start a new worker (after a test stopped this one)."""
        self.worker.stop()
        self.worker = start_worker(self.env, self.log_dir)


# Beat sends this every second, so a test can see beat and the worker at work within seconds.
BEAT_PROBE = "faults-sweep-expired-leases"


@contextlib.contextmanager
def fault_stack(log_dir: Path, *, reviewers: int = 3) -> Iterator[FaultStack]:
    """Private servers, migrated and seeded, with gunicorn, a Celery worker and Celery beat.

    Answers get a one-second undo window, so each completed task is resolved by a Celery task
    (`labeling.resolve_task`, enqueued after commit) seconds later.
    """
    with private_postgres() as database, private_redis() as broker:
        env = service_env(database.url, broker.url(), REVIEWAPP_UNDO_WINDOW_SECONDS="1")
        processes: list[Process] = []
        try:
            # The web and the worker touch the database only per request or task, so they start
            # while the schema is migrated; beat reads its schedule at start-up, so it waits.
            web, base_url = spawn_web(env, log_dir)
            processes.append(web)
            worker = spawn_worker(env, log_dir)
            processes.append(worker)
            setup = migrate_and_seed(env, reviewers=reviewers, periodic={BEAT_PROBE: "reviewapp.sweep_expired_leases"})
            beat = spawn_beat(env, log_dir)
            processes.append(beat)
            wait_for_web(web, base_url)
            wait_for_log(worker, " ready.")
            wait_for_log(beat, "beat: Starting")
            faults = FaultStack(database, broker, env, log_dir, setup, web, base_url, worker, beat)
            yield faults
            processes = faults.processes()
        finally:
            stop_all(processes)


def queued_tasks(broker: PrivateRedis, queue: str = "celery") -> list[tuple[str, list]]:
    """(task name, args) of the messages waiting in a Celery queue, read from Redis directly."""
    import base64

    messages = []
    for raw in broker.client().lrange(queue, 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        messages.append((message["headers"]["task"], args))
    return messages


def send_task(broker: PrivateRedis, name: str, **options: Any) -> str:
    """Enqueue a task by name on the private broker, as beat or a web process would; its id.

    The connection is passed explicitly: Celery prefers $CELERY_BROKER_URL (the test broker)
    to any broker URL given to an app.
    """
    from celery import Celery
    from kombu import Connection

    app = Celery("faults", set_as_current=False)
    try:
        with Connection(broker.url()) as connection:
            return app.send_task(name, connection=connection, **options).id
    finally:
        app.close()


def expire_a_lease(database: PrivatePostgres) -> int:
    """Give an open, unleased task a lease that expired a second ago (database clock); its id."""
    rows = database.fetch(
        """
        UPDATE reviewapp_reviewtask SET leased_by_id = (SELECT min(id) FROM auth_user),
               lease_expires_at = statement_timestamp() - interval '1 second'
         WHERE id = (SELECT id FROM reviewapp_reviewtask WHERE status = 'open' AND leased_by_id IS NULL
                      ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING id
        """
    )
    assert rows, "no open, unleased task to put an expired lease on"
    return rows[0][0]


def lease_released(database: PrivatePostgres, task_id: int) -> bool:
    """Whether the expiry sweep released the task's lease and said so in the audit log."""
    rows = database.fetch(
        "SELECT 1 FROM reviewapp_auditevent WHERE action = 'task.lease_expired' AND object_id = %s", [str(task_id)]
    )
    return bool(rows)


def unresolved_completed_tasks(database: PrivatePostgres) -> int:
    sql = "SELECT count(*) FROM reviewapp_reviewtask WHERE status = 'completed' AND resolved_at IS NULL"
    return database.fetch(sql)[0][0]


# --------------------------------------------------------------------------- clock skew


def libfaketime_library() -> Path:
    """libfaketime's shared library, as shipped by the PyPI package `libfaketime`
    (requirements-dev.txt), or Debian's (`apt-get install libfaketime`)."""
    import importlib.util

    candidates = [Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")]
    spec = importlib.util.find_spec("libfaketime")
    if spec and spec.submodule_search_locations:
        package = Path(next(iter(spec.submodule_search_locations)))
        candidates.insert(0, package / "vendor" / "libfaketime" / "src" / "libfaketime.so.1")
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise AssertionError("libfaketime is missing: `pip install -r requirements-dev.txt`")
    return found


def skewed_clock_env(env: dict[str, str], offset: str) -> dict[str, str]:
    """`env` for a process whose wall clock is shifted by `offset` ("+3h", "-90m"): libfaketime
    preloaded. Monotonic clocks stay true, so timeouts and sleeps behave."""
    preload = " ".join(part for part in (str(libfaketime_library()), env.get("LD_PRELOAD", "")) if part)
    return {**env, "LD_PRELOAD": preload, "FAKETIME": offset, "DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}


def wall_clock_of(env: dict[str, str]) -> float:
    """time.time() as a child started with `env` sees it."""
    out = subprocess.run(
        [sys.executable, "-c", "import time; print(time.time())"], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout)


# --------------------------------------------------------------------------- HTTP load


@dataclass
class Attempt:
    """One HTTP request of the load: when it ran (monotonic seconds) and what came back."""

    kind: str
    started: float
    finished: float
    status: int | None  # None: no HTTP response at all


@dataclass
class LoadReport:
    attempts: list[Attempt] = field(default_factory=list)
    acknowledged_decisions: set[str] = field(default_factory=set)  # external ids answered 2xx
    submissions: dict[str, tuple[int, int]] = field(default_factory=dict)  # id -> (task id, first 2xx status)
    unexpected: list[str] = field(default_factory=list)

    def statuses(self) -> dict[int | None, int]:
        counts: dict[int | None, int] = {}
        for attempt in self.attempts:
            counts[attempt.status] = counts.get(attempt.status, 0) + 1
        return counts

    def unavailable(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.status == 503]

    def failed_after(self, moment: float) -> list[Attempt]:
        """Requests started after `moment` that did not succeed."""
        return [a for a in self.attempts if a.started > moment and (a.status is None or a.status >= 300)]


def retryable_problem(response: requests.Response) -> str | None:
    """Why a 503 does not read as "retry later" to an API client; None when it does."""
    retry_after = response.headers.get("Retry-After", "")
    if not retry_after.isdigit() or int(retry_after) <= 0:
        return f"503 without a usable Retry-After header ({retry_after!r})"
    try:
        body = response.json()
    except ValueError:
        return f"503 without a JSON body: {response.text[:200]!r}"
    if body.get("retryable") is not True or "retry" not in str(body.get("detail", "")).lower():
        return f"503 whose body does not say to retry: {body!r}"
    return None


class Load:
    """Ingest clients and reviewers hammering the web server until stopped.

    Ingest clients post batches of new decisions (mid scores, so each becomes a review task);
    reviewers claim a task and submit an answer. Both retry a 503 with the same request until
    it succeeds, as the API documents; everything else that is not a success is unexpected.
    """

    def __init__(self, base_url: str, setup: dict, *, label: str, ingest_clients: int = 2, batch: int = 10) -> None:
        self.base_url = base_url
        self.setup = setup
        self.label = label
        self.batch = batch
        self.report = LoadReport()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.threads = [threading.Thread(target=self._ingest_client, daemon=True) for _ in range(ingest_clients)]
        self.threads += [
            threading.Thread(target=self._reviewer, args=(token,), daemon=True) for token in setup["reviewer_tokens"]
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> LoadReport:
        """Stop starting new work; every client finishes (acknowledges) what it has in hand."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=GIVE_UP_AFTER + 10)
            if thread.is_alive():
                self.report.unexpected.append("a load client did not finish its last request")
        return self.report

    def _post(self, session: requests.Session, kind: str, path: str, token: str, body: dict | None) -> Any:
        started = time.monotonic()
        try:
            response = session.post(
                self.base_url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
        except requests.RequestException as error:
            self.report.attempts.append(Attempt(kind, started, time.monotonic(), None))
            self._unexpected(f"{kind}: no response ({type(error).__name__}: {error})")
            return None
        self.report.attempts.append(Attempt(kind, started, time.monotonic(), response.status_code))
        if response.status_code == 503:
            problem = retryable_problem(response)
            if problem:
                self._unexpected(f"{kind}: {problem}")
        return response

    def _until_done(self, session: requests.Session, kind: str, path: str, token: str, body: dict | None) -> Any:
        """POST, repeating the same request after each 503; the final response or None."""
        deadline = time.monotonic() + GIVE_UP_AFTER
        while time.monotonic() < deadline:
            response = self._post(session, kind, path, token, body)
            if response is None or response.status_code != 503:
                return response
            time.sleep(RETRY_PAUSE)
        self._unexpected(f"{kind}: still 503 after {GIVE_UP_AFTER:.0f}s")
        return None

    def _unexpected(self, message: str) -> None:
        with self.lock:
            if len(self.report.unexpected) < 50:
                self.report.unexpected.append(message)

    def _ingest_client(self) -> None:
        session = requests.Session()
        while not self.stopping.is_set():
            ids = [f"{self.label}-{next(self.counter)}" for _ in range(self.batch)]
            rows = [
                {"source": "faults", "external_id": external_id, "text": f"load item {external_id}",
                 "policy": SEED_POLICY, "model_name": "tox", "model_version": "1", "score": 0.5}
                for external_id in ids
            ]  # fmt: skip
            token = self.setup["ingest_token"]
            response = self._until_done(session, "ingest", "/api/v1/decisions", token, {"decisions": rows})
            if response is None:
                continue
            if response.status_code == 200:
                with self.lock:
                    self.report.acknowledged_decisions.update(ids)
            else:
                self._unexpected(f"ingest: {response.status_code} {response.text[:300]}")

    def _reviewer(self, token: str) -> None:
        session = requests.Session()
        queue_path = f"/api/v1/queues/{self.setup['queue_id']}/claim"
        while not self.stopping.is_set():
            claim = self._until_done(session, "claim", queue_path, token, None)
            if claim is None:
                continue
            if claim.status_code == 204:
                time.sleep(0.05)
                continue
            if claim.status_code != 200:
                self._unexpected(f"claim: {claim.status_code} {claim.text[:300]}")
                continue
            task_id = claim.json()["id"]
            submission_id = str(uuid.uuid4())
            body = {"submission_id": submission_id, "labels": ["violating"]}
            submit = self._until_done(session, "submit", f"/api/v1/tasks/{task_id}/annotations", token, body)
            if submit is None:
                continue
            if submit.status_code in (200, 201):
                with self.lock:
                    self.report.submissions[submission_id] = (task_id, submit.status_code)
            else:
                self._unexpected(f"submit: {submit.status_code} {submit.text[:300]}")


def missing_after_restart(database: PrivatePostgres, report: LoadReport) -> dict[str, list[str]]:
    """Acknowledged work that the database does not have: decisions by external id,
    annotations by submission id. Empty lists when nothing acknowledged was lost."""
    decisions = sorted(report.acknowledged_decisions)
    found = {row[0] for row in database.fetch(
        "SELECT external_id FROM reviewapp_contentitem WHERE source = 'faults' AND external_id = ANY(%s)", [decisions]
    )}  # fmt: skip
    submissions = sorted(report.submissions)
    recorded = {row[0] for row in database.fetch(
        "SELECT submission_id::text FROM labeling_annotation WHERE submission_id = ANY(%s::uuid[])", [submissions]
    )}  # fmt: skip
    return {
        "decisions": [i for i in decisions if i not in found],
        "submissions": [i for i in submissions if i not in recorded],
    }


# --------------------------------------------------------------------------- seeding (child process)


def migrate_and_seed(env: dict[str, str], *, reviewers: int, periodic: dict[str, str] | None = None) -> dict:
    """`migrate` the database of `env`, then create a policy, a review queue, its routing rule, an
    ingest token and reviewers with tokens; returns their ids and secrets. One child process,
    so Django starts once.

    `periodic`: {name: task} entries that beat should send every second (django-celery-beat's
    DatabaseScheduler reads them from PostgreSQL).
    """
    code = f"from tests.faults.services import _seed; _seed({reviewers}, {json.dumps(periodic or {})!r})"
    out = manage(env, "shell", "-c", code)
    return json.loads(out.strip().splitlines()[-1])


def _seed(reviewers: int, periodic_json: str) -> None:
    from django.core.management import call_command
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from reviewapp.audit import SYSTEM
    from reviewapp.services.tokens import token_create
    from tests.factories import PolicyFactory, QueueFactory, RoutingRuleFactory, UserFactory

    call_command("migrate", interactive=False, verbosity=0)
    policy = PolicyFactory(key=SEED_POLICY)
    queue = QueueFactory(slug="faults-review", lease_seconds=600)
    RoutingRuleFactory(policy=policy, queue=queue, auto_clear=0.2, auto_action=0.9)
    _, ingest_token = token_create(name="faults-ingest", scopes=["decisions:write"], actor=SYSTEM)
    tokens = []
    for number in range(reviewers):
        user = UserFactory(username=f"faults-reviewer-{number}")
        queue.members.add(user)
        _, secret = token_create(name=f"faults-reviewer-{number}", scopes=["tasks:write"], actor=SYSTEM, user=user)
        tokens.append(secret)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    for name, task in json.loads(periodic_json).items():
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "interval": every_second})
    print(json.dumps({"queue_id": queue.pk, "ingest_token": ingest_token, "reviewer_tokens": tokens}))
