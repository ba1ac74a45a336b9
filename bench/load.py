"""Fifty reviewers on the production web stack (gunicorn, whitenoise) while ingest runs beside them.

    python bench/load.py [--reviewers 50] [--seconds 60] [--worker-class gthread --workers 2 --threads 2]
                         [--flow page|htmx] [--ingest-batch 250 --ingest-every 0.5]

Needs DATABASE_URL and CELERY_BROKER_URL (`make bench` provides them). Works in its own database
(`<name>_bench_load`, dropped and re-created), so it never touches real data; gunicorn runs with
bench/_load_server.py, which sends the Celery messages that submissions enqueue to a queue of
their own (`bench_load`) and prefixes the cache keys they write (`reviewapp-bench-load`); both are
deleted at the end.

Setup: one policy with a real guideline and label schema, one review queue (one annotation per
item), --reviewers reviewer accounts with a password, a routing rule, an ingest token, and
--tasks open tasks ingested through the ingest service (every row in the review band), then
VACUUM ANALYZE. Static files are collected into STATIC_ROOT first, as `make run` does: production
settings serve hashed file names from its manifest.

The server is the production one: `gunicorn config.wsgi:application` with DJANGO_DEBUG=0
(manifest static files through whitenoise, secure cookies, HTTPS redirect), behind what it takes
for a TLS proxy (DJANGO_BEHIND_TLS_PROXY=1; the client sends X-Forwarded-Proto: https, Origin and
Referer, as a browser behind the proxy would). Worker class and counts are options; the default,
gthread with 2 workers of 2 threads, is one process per core (the work is CPU-bound Python) with
a second thread to use the core while the first waits on PostgreSQL or Redis. On 2 cores, sync
workers (2 or 3) and more threads or workers served the same cycles per second with higher
server latency: requests then share the cores inside the server instead of waiting to be read.

Each simulated reviewer is a browser: it logs in through the login form, opens the workspace
(`POST /queues/<id>/work`, the Start reviewing button, which claims a task and redirects to
`GET /queues/<id>/work`, which renders the page with the held task) and fetches its static files
once; once all are ready, the timed phase starts. Flows (--flow):
- page: every cycle is `POST /tasks/<id>/submit` with the CSRF token in X-CSRFToken as htmx sends
  it, without HX-Request, so the server records the answer, claims the next task and answers 302
  back to the workspace, then `GET /queues/<id>/work` (render the whole page; the no-JavaScript
  path);
- htmx: every cycle is one htmx `POST /tasks/<id>/submit`, whose response is the next item
  (submit + claim + render of the `task` partial), which is what the keyboard workspace does.
Reviewers do not pause between items (a closed loop: 50 requests in flight at all times).
Meanwhile an ingest client posts --ingest-batch decisions to /api/v1/decisions every
--ingest-every seconds, into the same queue the reviewers are draining.

Server latency is what gunicorn measures for each request (access log, %(D)s: from the request
being read to the response being written, without the time a connection waits to be accepted),
split into phases with the Server-Timing header the workspace sends (claim, submit, render). Client
latency includes that wait. Errors: any unexpected status, transport error or refused answer.
Double claims are checked in the database afterwards (a task claimed by two reviewers, a task
with two live annotations) and on the client (a task shown to two reviewers); every answer the
server accepted must be in the database.
The CPU line says where the time went (gunicorn, the PostgreSQL backends of the bench database,
this load generator, per cycle) and how much of the machine other processes took meanwhile: on
a shared machine that share makes latencies meaningless, so the load average is printed too.
Last line: `p95_claim_render_ms=… target_ms=100 ratio=… errors=… double_claims=…`: the server-side
p95 of the request that renders an item (page flow: `GET …/work`, which shows the item the
submit's POST claimed: GET claims nothing; htmx flow: the submit request, which also records the
answer and claims), ratio = p95 / target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import httpx
    import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _db import bench_database_url, recreate_database  # noqa: E402

QUEUE_SLUG = "bench-load"
CELERY_QUEUE = "bench_load"
CACHE_PREFIX = "reviewapp-bench-load"
TARGET_MS = 100.0
LABELS = ["violating", "borderline", "not_violating", "spam"]
GUIDELINE = """# Harassment

Content that **targets a person** with abuse, threats or degrading language.

## Violating
- Insults or slurs aimed at an identifiable person or group.
- Threats of violence, including conditional ones ("if you come here again…").
- Encouraging others to pile on, dox or report someone in bad faith.

## Borderline
- Heated disagreement with profanity that is not aimed at a person.
- Quoting abuse in order to condemn it: label the quote's intent, not its words.

## Not violating
- Criticism of ideas, products or public conduct without personal abuse.
- Self-deprecation and banter between people who clearly know each other.

When in doubt, escalate with a note rather than guessing.
"""
PHRASES = [
    "you are such a clown",
    "honestly nobody asked for your opinion",
    "this thread is great",
    "love the video",
    "what a stupid take",
    "go away idiot",
    "nice stream today",
    "thanks for sharing",
    "never post again loser",
    "click this link for free followers",
    "people like you ruin everything",
]
# The access log line: method, path, status, microseconds, request id, then the Server-Timing header.
ACCESS_LOG_FORMAT = '%(m)s %(U)s %(s)s %(D)s %({x-request-id}i)s "%({server-timing}o)s"'

TASK_RE = re.compile(r'data-task="(\d+)"')
SUBMISSION_RE = re.compile(r'name="submission_id" value="([0-9a-f-]{36})"')
VERSION_RE = re.compile(r'name="policy_version" value="(\d+)"')
CSRF_HEADER_RE = re.compile(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'")
CSRF_FIELD_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
STATIC_RE = re.compile(r'(?:href|src)="(/static/[^"]+)"')
NOTICE_RE = re.compile(r'<p class="notice" role="status">([^<]*)</p>|<li role="status">([^<]*)</li>')
EMPTY_MARK = "Nothing to review here right now"


# --------------------------------------------------------------------------- setup


def server_environment(database_url: str) -> dict[str, str]:
    """Production settings for the bench database; shared by this process and gunicorn."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),  # sessions of this run only
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_BEHIND_TLS_PROXY="1",
        BENCH_LOAD_CELERY_QUEUE=CELERY_QUEUE,
        BENCH_LOAD_CACHE_PREFIX=CACHE_PREFIX,
    )
    return env


def configure_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()
    import logging

    from django.conf import settings

    from config.celery import app

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    # The same fences as the server's (bench/_load_server.py), for what setup writes here.
    settings.CACHES["default"]["KEY_PREFIX"] = CACHE_PREFIX
    app.conf.task_routes = {"*": {"queue": CELERY_QUEUE}}


def decision_rows(start: int, n: int, rng: random.Random, *, review_band_only: bool) -> list[dict]:
    rows = []
    for i in range(start, start + n):
        text = ", ".join(rng.choice(PHRASES) for _ in range(rng.randint(3, 12)))
        row = {
            "source": "comments",
            "external_id": f"c-{i}",
            "text": text,
            "metadata": {"language": "en", "region": rng.choice(["GB", "US", "IN", "BR"]), "surface": "comments"},
            "reach": int(rng.paretovariate(1.2) * 10),
            "policy": "harassment",
            "model_name": "tox-bert",
            "model_version": "2026.11",
            "score": round(rng.uniform(0.2, 0.85) if review_band_only else rng.random(), 4),
            "predicted_label": "violating",
        }
        if i % 4 == 0:
            row["context"] = [{"author": "u1", "text": "what do you think of this?"}]
        if i % 3 == 0:
            row["evidence_spans"] = [{"start": 0, "end": min(12, len(text)), "label": "insult"}]
        rows.append(row)
    return rows


@dataclass
class Fixtures:
    queue_id: int
    usernames: list[str]
    password: str
    ingest_secret: str


def setup_fixtures(n_tasks: int, n_reviewers: int) -> Fixtures:
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User

    from labeling.models import Policy, PolicyVersion
    from reviewapp.audit import SYSTEM
    from reviewapp.models import Queue, RoutingRule
    from reviewapp.services.ingest import decisions_ingest
    from reviewapp.services.tokens import token_create

    schema = {
        "labels": [{"value": value, "title": value.replace("_", " ").capitalize()} for value in LABELS],
        "severity_levels": ["low", "medium", "high"],
    }
    policy = Policy.objects.create(key="harassment", name="Harassment")
    PolicyVersion.objects.create(policy=policy, number=1, guideline=GUIDELINE, label_schema=schema)
    queue = Queue.objects.create(slug=QUEUE_SLUG, name="Harassment review", sla_minutes=240)
    RoutingRule.objects.create(policy=policy, auto_clear=0.15, auto_action=0.9, queue=queue)
    password = secrets.token_urlsafe(16)
    hashed = make_password(password)  # once: the production hasher is slow on purpose
    users = User.objects.bulk_create(User(username=f"reviewer{i:02d}", password=hashed) for i in range(n_reviewers))
    queue.members.add(*users)
    _, secret = token_create(name="bench-load-ingest", scopes=["decisions:write"], actor=SYSTEM)
    rng = random.Random(7)
    for start in range(0, n_tasks, 1000):
        rows = decision_rows(start, min(1000, n_tasks - start), rng, review_band_only=True)
        decisions_ingest(rows=rows, actor=SYSTEM)
    return Fixtures(queue.pk, [u.username for u in users], password, secret)


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "reviewapp_reviewtask",
            "reviewapp_contentitem",
            "reviewapp_modeldecision",
            "labeling_annotation",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


# --------------------------------------------------------------------------- the server


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    access_log: Path
    error_log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, env: dict[str, str], folder: Path) -> Server:
    port = free_port()
    access_log, error_log = folder / "access.log", folder / "error.log"
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "-c",
        str(ROOT / "bench" / "_load_server.py"),
    ]
    cmd += ["--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--worker-class", args.worker_class]
    cmd += ["--threads", str(args.threads), "--backlog", "2048", "--timeout", "60"]
    cmd += ["--access-logfile", str(access_log), "--access-logformat", ACCESS_LOG_FORMAT]
    cmd += ["--error-logfile", str(error_log)]
    ready = folder / "ready"
    ready.mkdir()
    process = subprocess.Popen(cmd, cwd=ROOT, env={**env, "BENCH_LOAD_READY_DIR": str(ready)}, start_new_session=True)
    server = Server(process, port, access_log, error_log)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}: {error_log.read_text()[-2000:]}")
        if len(list(ready.iterdir())) >= args.workers:
            return server
        time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"gunicorn's workers did not load the application within 300 s: {error_log.read_text()[-2000:]}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def server_cpu_seconds(master_pid: int) -> float:
    """CPU of the gunicorn master and its workers, from /proc."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry.name) == master_pid or int(fields[1]) == master_pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class BackendCpu:
    """CPU of the bench database's PostgreSQL backends over the timed phase, from /proc.

    Sampled every half second: web processes close their connections after CONN_MAX_AGE and
    open new ones, so a backend's CPU is read while it lives (a new one counts from zero).
    Reads nothing when PostgreSQL runs on another machine.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def sample(self, conn: psycopg.Connection, *, initial: bool = False) -> None:
        for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"):
            seconds = process_cpu_seconds(pid)
            if seconds is None:
                continue
            self.first.setdefault(pid, seconds if initial else 0.0)
            self.last[pid] = seconds

    async def run(self, stop: asyncio.Event) -> None:
        import psycopg

        # Its own connection: this runs inside the client's event loop, where Django refuses queries.
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            self.sample(conn, initial=True)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
                self.sample(conn)

    @property
    def seconds(self) -> float:
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


def process_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the simulated browsers


@dataclass
class Sample:
    kind: str  # work | submit | ingest
    client_seconds: float
    request_id: str


@dataclass
class Tally:
    samples: list[Sample] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    first_error: str = ""
    accepted: int = 0  # answers the server said it saved
    cycles: int = 0
    shown: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))  # task id → reviewers
    ingest_rows: int = 0
    drained: bool = False

    def error(self, what: str, detail: str) -> None:
        self.errors[what] += 1
        if not self.first_error:
            self.first_error = f"{what}: {detail[:300]}"


class Browser:
    """One reviewer's browser behind a TLS proxy: cookies kept by hand (they are Secure), CSRF
    token from the page, Origin/Referer as the browser sends them."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, username: str, tally: Tally) -> None:
        self.client = client
        self.username = username
        self.origin = "https://" + urlsplit(base_url).netloc
        self.cookies: dict[str, str] = {}
        self.tally = tally
        self.csrf = ""
        self.task_id: int | None = None
        self.page = ""
        self.timed = False

    async def request(self, kind: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        phase = "load" if self.timed else "warm"
        request_id = f"{phase}-{kind}-{uuid.uuid4().hex[:16]}"
        headers = {
            "X-Forwarded-Proto": "https",
            "X-Request-ID": request_id,
            "Referer": self.origin + path,
            **kwargs.pop("headers", {}),
        }
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "POST":
            headers["Origin"] = self.origin
        started = time.perf_counter()
        response = await self.client.request(method, path, headers=headers, **kwargs)
        elapsed = time.perf_counter() - started
        for raw in response.headers.get_list("set-cookie"):
            for name, morsel in SimpleCookie(raw).items():
                self.cookies[name] = morsel.value
        if self.timed and kind in ("work", "submit"):
            self.tally.samples.append(Sample(kind, elapsed, request_id))
        return response

    async def log_in(self, password: str) -> None:
        page = await self.request("login", "GET", "/accounts/login/")
        token = CSRF_FIELD_RE.search(page.text)
        data = {"username": self.username, "password": password, "csrfmiddlewaretoken": token.group(1) if token else ""}
        response = await self.request("login", "POST", "/accounts/login/", data=data)
        if response.status_code != 302:
            raise SystemExit(f"{self.username} could not log in: {response.status_code} {response.text[:300]}")

    async def fetch_static(self) -> None:
        for path in sorted(set(STATIC_RE.findall(self.page))):
            response = await self.request("static", "GET", path)
            if response.status_code != 200:
                self.tally.error("static", f"{path} {response.status_code}")

    async def open_workspace(self, queue_id: int) -> bool:
        """Press Start reviewing (POST, claims), then GET the workspace; False when the queue has nothing left."""
        token = self.csrf or self.cookies.get("csrftoken", "")
        claim = await self.request("claim", "POST", f"/queues/{queue_id}/work", headers={"X-CSRFToken": token})
        if claim.status_code != 302:
            self.tally.error(f"claim_{claim.status_code}", claim.text)
            return True
        response = await self.request("work", "GET", f"/queues/{queue_id}/work")
        if response.status_code != 200:
            self.tally.error(f"work_{response.status_code}", response.text)
            return True
        return self.read_item(response.text)

    async def submit(self, queue_id: int, *, htmx: bool) -> bool:
        """Answer the item shown; with htmx, read the next item from the response."""
        submission = SUBMISSION_RE.search(self.page)
        version = VERSION_RE.search(self.page)
        data = {
            "submission_id": submission.group(1) if submission else "",
            "labels": random.choice(LABELS),
            "handle_time_ms": str(random.randint(2000, 20000)),
            "policy_version": version.group(1) if version else "",
            "severity": "",
            "rationale": "",
        }
        headers = {"X-CSRFToken": self.csrf}
        if htmx:
            headers |= {"HX-Request": "true", "HX-Current-URL": f"{self.origin}/queues/{queue_id}/work"}
        response = await self.request("submit", "POST", f"/tasks/{self.task_id}/submit", data=data, headers=headers)
        if htmx and response.status_code == 200:
            self.check_saved(response.text)
            return self.read_item(response.text, keep_csrf=True)
        if not htmx and response.headers.get("location", "").endswith(f"/queues/{queue_id}/work"):
            response = await self.request("work", "GET", f"/queues/{queue_id}/work")
            if response.status_code == 200:
                self.check_saved(response.text)
                return self.read_item(response.text)
        # Start again from the workspace, as a reviewer would reload the page.
        self.tally.error(f"{response.request.method.lower()}_{response.status_code}", response.text)
        return await self.open_workspace(queue_id)

    def check_saved(self, html: str) -> None:
        notice = NOTICE_RE.search(html)
        text = (notice.group(1) or notice.group(2)) if notice else None
        if text == "Saved.":
            self.tally.accepted += 1
            self.tally.cycles += 1
        else:
            self.tally.error("answer_not_saved", text or "no notice in the response")

    def read_item(self, html: str, *, keep_csrf: bool = False) -> bool:
        self.page = html
        if not keep_csrf:
            token = CSRF_HEADER_RE.search(html)
            if token is None:
                self.tally.error("page_without_csrf_token", html)
                return True
            self.csrf = token.group(1)
        task = TASK_RE.search(html)
        if task is None:
            if EMPTY_MARK in html:
                self.tally.drained = True
                return False
            self.tally.error("page_without_item", html)
            return True
        self.task_id = int(task.group(1))
        if self.timed:
            self.tally.shown[self.task_id].add(self.username)
        return True


async def reviewer_loop(browser: Browser, queue_id: int, args: argparse.Namespace, deadline: float) -> None:
    more = True
    while more and time.monotonic() < deadline and browser.tally.cycles < args.max_cycles:
        try:
            more = await browser.submit(queue_id, htmx=args.flow == "htmx")
        except Exception as exc:  # a transport error or timeout: count it, reload the workspace, go on
            browser.tally.error(type(exc).__name__, str(exc))
            try:
                more = await browser.open_workspace(queue_id)
            except Exception as again:
                browser.tally.error(type(again).__name__, str(again))
                return


async def ingest_loop(
    client: httpx.AsyncClient, tally: Tally, secret: str, args: argparse.Namespace, deadline: float
) -> None:
    rng = random.Random(11)
    next_id = 10_000_000
    headers = {"Authorization": f"Bearer {secret}", "X-Forwarded-Proto": "https", "Content-Type": "application/json"}
    while time.monotonic() < deadline:
        started = time.monotonic()
        rows = decision_rows(next_id, args.ingest_batch, rng, review_band_only=False)
        next_id += args.ingest_batch
        request_id = f"load-ingest-{uuid.uuid4().hex[:16]}"
        t0 = time.perf_counter()
        try:
            response = await client.post(
                "/api/v1/decisions",
                content=json.dumps({"decisions": rows}),
                headers=headers | {"X-Request-ID": request_id},
            )
        except Exception as exc:
            tally.error(f"ingest_{type(exc).__name__}", str(exc))
        else:
            tally.samples.append(Sample("ingest", time.perf_counter() - t0, request_id))
            if response.status_code != 200:
                tally.error(f"ingest_{response.status_code}", response.text)
            else:
                tally.ingest_rows += len(rows)
        await asyncio.sleep(max(0.0, args.ingest_every - (time.monotonic() - started)))


async def drive(server: Server, fixtures: Fixtures, args: argparse.Namespace) -> tuple[Tally, float, dict[str, float]]:
    """Log everyone in, open their workspaces, then run the timed phase; returns the tally, its wall time and CPU."""
    import httpx

    tally = Tally()
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    timeout = httpx.Timeout(args.request_timeout)
    clients = [httpx.AsyncClient(base_url=server.base_url, limits=limits, timeout=timeout) for _ in fixtures.usernames]
    ingest_client = httpx.AsyncClient(base_url=server.base_url, timeout=timeout)
    browsers = [Browser(c, server.base_url, name, tally) for c, name in zip(clients, fixtures.usernames, strict=True)]
    try:
        # Logging in runs the password hasher, slow on purpose: a few at a time, like a shift starting.
        gate = asyncio.Semaphore(4)
        await asyncio.gather(*(warm_up(b, fixtures, gate) for b in browsers))
        if tally.errors:
            raise SystemExit(f"warm-up failed: {tally.first_error}")
        for browser in browsers:
            browser.timed = True
        database_cpu, sampling = BackendCpu(os.environ["DATABASE_URL"]), asyncio.Event()
        sampler = asyncio.create_task(database_cpu.run(sampling))
        cpu0 = phase_cpu(server)
        started = time.monotonic()
        deadline = started + args.seconds
        tasks = [reviewer_loop(b, fixtures.queue_id, args, deadline) for b in browsers]
        if args.ingest_batch > 0:
            tasks.append(ingest_loop(ingest_client, tally, fixtures.ingest_secret, args, deadline))
        await asyncio.gather(*tasks)
        wall = time.monotonic() - started
        cpu1 = phase_cpu(server)
        sampling.set()
        await sampler
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), ingest_client.aclose())
    return tally, wall, {**{key: cpu1[key] - cpu0[key] for key in cpu0}, "database": database_cpu.seconds}


async def warm_up(browser: Browser, fixtures: Fixtures, gate: asyncio.Semaphore) -> None:
    async with gate:
        await browser.log_in(fixtures.password)
        if not await browser.open_workspace(fixtures.queue_id):
            raise SystemExit("the queue is empty before the timed phase; raise --tasks")
        await browser.fetch_static()


def phase_cpu(server: Server) -> dict[str, float]:
    return {
        "machine": machine_busy_seconds(),
        "server": server_cpu_seconds(server.process.pid),
        "client": time.process_time(),
    }


# --------------------------------------------------------------------------- figures


@dataclass
class ServerRecord:
    status: int
    seconds: float
    timing: dict[str, float]  # Server-Timing phases, seconds


def read_access_log(path: Path) -> dict[str, ServerRecord]:
    """Timed requests by request id, from gunicorn's access log."""
    records = {}
    for line in path.read_text().splitlines():
        parts = line.split(" ", 5)
        if len(parts) < 6 or not parts[4].startswith("load-"):
            continue
        timing = {}
        for entry in parts[5].strip('"').split(","):
            name, _, duration = entry.strip().partition(";dur=")
            if duration:
                timing[name] = float(duration) / 1000
        records[parts[4]] = ServerRecord(int(parts[2]), int(parts[3]) / 1e6, timing)
    return records


def percentiles(values: list[float]) -> str:
    if not values:
        return "p50=n/a p95=n/a p99=n/a n=0"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50={at(0.50):.1f} p95={at(0.95):.1f} p99={at(0.99):.1f} n={len(ordered)}"


def p95_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000 if ordered else float("nan")


def database_check(tally: Tally) -> tuple[str, int, int]:
    """Double claims and lost answers, from the database; returns the line, double claims, lost answers."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM (SELECT object_id FROM reviewapp_auditevent WHERE action = 'task.claimed'
                                   GROUP BY object_id HAVING count(DISTINCT actor_id) > 1) d
            """
        )
        claimed_by_two = cursor.fetchone()[0]
        cursor.execute(
            """
            SELECT count(*) FROM (SELECT task_id FROM labeling_annotation WHERE retracted_at IS NULL
                                   GROUP BY task_id HAVING count(*) > 1) d
            """
        )
        annotated_twice = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM labeling_annotation")
        annotations = cursor.fetchone()[0]
        cursor.execute("SELECT status, count(*) FROM reviewapp_reviewtask GROUP BY status ORDER BY status")
        statuses = " ".join(f"tasks_{status}={count}" for status, count in cursor.fetchall())
    shown_twice = sum(1 for reviewers in tally.shown.values() if len(reviewers) > 1)
    lost = max(0, tally.accepted - annotations)
    line = (
        f"db_check tasks_claimed_by_two={claimed_by_two} tasks_with_two_live_annotations={annotated_twice} "
        f"tasks_shown_to_two={shown_twice} annotations={annotations} accepted_by_server={tally.accepted} "
        f"lost_answers={lost} {statuses}"
    )
    return line, claimed_by_two + annotated_twice + shown_twice, lost


def drop_celery_queue() -> int:
    """Delete the bench's Celery queue; returns how many messages the submissions had enqueued."""
    from kombu import Exchange
    from kombu import Queue as KombuQueue

    from config.celery import app

    declared = KombuQueue(CELERY_QUEUE, Exchange(CELERY_QUEUE), routing_key=CELERY_QUEUE)
    with app.connection_for_write() as conn:
        queue = declared(conn.default_channel)
        queue.declare()
        messages = queue.purge() or 0
        queue.delete()
    return messages


def drop_cache_keys() -> int:
    import redis
    from django.conf import settings

    location = settings.CACHES["default"]["LOCATION"]
    first_server = re.split("[;,]", location)[0] if isinstance(location, str) else location[0]
    client = redis.Redis.from_url(first_server)
    keys = list(client.scan_iter(match=f"{CACHE_PREFIX}:*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


@dataclass
class Report:
    lines: list[str]
    p95_claim_render_ms: float
    errors: int


def report(args: argparse.Namespace, tally: Tally, wall: float, cpu: dict[str, float], server: Server) -> Report:
    """The figures of the timed phase, client samples joined with the access log by request id."""
    records = read_access_log(server.access_log)
    by_kind: dict[str, list[tuple[Sample, ServerRecord | None]]] = defaultdict(list)
    for sample in tally.samples:
        by_kind[sample.kind].append((sample, records.get(sample.request_id)))
    missing = sum(1 for pairs in by_kind.values() for _, record in pairs if record is None)
    server_errors = sum(1 for record in records.values() if record.status >= 500)

    def server_times(kind: str) -> list[float]:
        return [r.seconds for _, r in by_kind[kind] if r is not None]

    def phase_times(kind: str, *phases: str) -> list[float]:
        return [sum(r.timing.get(p, 0.0) for p in phases) for _, r in by_kind[kind] if r and phases[0] in r.timing]

    claim_kind = "submit" if args.flow == "htmx" else "work"
    lines = []
    for kind in ("work", "submit", "ingest"):
        if by_kind[kind]:
            lines.append(
                f"{kind} server_ms {percentiles(server_times(kind))} | "
                f"client_ms {percentiles([s.client_seconds for s, _ in by_kind[kind]])}"
            )
    lines.append(f"phases claim+render server_ms {percentiles(phase_times(claim_kind, 'claim', 'render'))}")
    lines.append(f"phases claim server_ms {percentiles(phase_times(claim_kind, 'claim'))}")
    lines.append(f"phases render server_ms {percentiles(phase_times(claim_kind, 'render'))}")
    lines.append(f"phases submit server_ms {percentiles(phase_times('submit', 'submit'))}")
    cores = os.cpu_count() or 1
    other = cpu["machine"] - cpu["server"] - cpu["client"] - cpu["database"]
    cycles = max(tally.cycles, 1)
    lines.append(
        f"throughput cycles={tally.cycles} seconds={wall:.1f} cycles_per_s={tally.cycles / wall:.1f} "
        f"ingest_rows={tally.ingest_rows} ingest_rows_per_s={tally.ingest_rows / wall:.0f} "
        f"queue_drained={tally.drained}"
    )
    per_cycle = {name: seconds / cycles * 1000 for name, seconds in cpu.items()}
    lines.append(
        f"cpu_ms_per_cycle gunicorn={per_cycle['server']:.1f} postgres={per_cycle['database']:.1f} "
        f"load_generator={per_cycle['client']:.1f} (ingest included) | "
        f"machine_busy_pct={100 * cpu['machine'] / (wall * cores):.0f} "
        f"other_processes_pct={100 * other / (wall * cores):.0f}"
    )
    errors = sum(tally.errors.values()) + server_errors + missing
    detail = " ".join(f"{what}={count}" for what, count in sorted(tally.errors.items()))
    lines.append(
        f"errors={errors} server_5xx={server_errors} missing_from_access_log={missing} {detail}".rstrip()
        + (f" first: {tally.first_error}" if tally.first_error else "")
    )
    return Report(lines, p95_ms(server_times(claim_kind)), errors)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the timed phase")
    parser.add_argument("--max-cycles", type=int, default=500_000, help="stop earlier after this many answers")
    parser.add_argument("--tasks", type=int, default=20_000, help="open tasks before the timed phase")
    parser.add_argument("--flow", choices=["page", "htmx"], default="page")
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="gthread")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ingest-batch", type=int, default=250, help="decisions per ingest request; 0: no ingest")
    parser.add_argument("--ingest-every", type=float, default=0.5, help="seconds between ingest requests")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    args = parser.parse_args()

    started = time.perf_counter()
    env = server_environment(bench_database_url("bench_load"))
    recreate_database(env["DATABASE_URL"])
    configure_django(env)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    fixtures = setup_fixtures(args.tasks, args.reviewers)
    vacuum()
    print(
        f"setup tasks={args.tasks} reviewers={args.reviewers} seconds={time.perf_counter() - started:.0f} "
        f"server=gunicorn worker_class={args.worker_class} workers={args.workers} threads={args.threads} "
        f"flow={args.flow} ingest={args.ingest_batch}/{args.ingest_every}s",
        flush=True,
    )

    with tempfile.TemporaryDirectory(prefix="bench-load-") as folder:
        server = start_server(args, env, Path(folder))
        try:
            load_before = load_average()
            tally, wall, cpu = asyncio.run(drive(server, fixtures, args))
            load_after = load_average()
        finally:
            stop_server(server)
        figures = report(args, tally, wall, cpu, server)
    check, double_claims, lost = database_check(tally)
    errors = figures.errors + lost
    celery_messages, cache_keys = drop_celery_queue(), drop_cache_keys()
    print(f"load_average before={load_before} after={load_after} (1/5/15 min, {os.cpu_count()} cores)")
    for line in figures.lines:
        print(line)
    print(f"{check} celery_messages_enqueued={celery_messages} cache_keys={cache_keys}")
    print(f"total_seconds={time.perf_counter() - started:.0f}")
    print(
        "reference: issue #8 targets p95 < 100 ms (server) for claim+render with 50 reviewers and ingest running, "
        "on 2 cores, with zero errors and zero double claims"
    )
    p95 = figures.p95_claim_render_ms
    print(
        f"p95_claim_render_ms={p95:.1f} target_ms={TARGET_MS:.0f} ratio={p95 / TARGET_MS:.3f} "
        f"errors={errors} double_claims={double_claims} flow={args.flow}"
    )


if __name__ == "__main__":
    main()
