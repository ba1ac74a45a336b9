"""A real Label Studio server for the integration tests.

Label Studio pins another DRF than reviewapp, so it lives in its own virtualenv, outside the
repository and shared by every checkout on the machine (CI's fresh clone included):
`$REVIEWAPP_LABEL_STUDIO_HOME` (default `~/.cache/reviewapp`)/label-studio-<version>/. It is
installed on first use (about 1 GB; a few minutes) and reused afterwards; a marker file written
last tells a finished install from an interrupted one, and a file lock keeps two test runs from
installing at once.

A fresh Label Studio spends over a minute migrating its SQLite database, so the first run also
keeps a migrated data folder (with its admin user and token) as a template; each test session
starts from a copy of it, which takes seconds and leaves no state behind between sessions.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

LS_VERSION = "1.23.2"
ADMIN_EMAIL = "admin@example.com"
HOME = Path(os.environ.get("REVIEWAPP_LABEL_STUDIO_HOME") or Path.home() / ".cache" / "reviewapp")
VENV = HOME / f"label-studio-{LS_VERSION}"
READY = VENV / ".reviewapp-ready"
TEMPLATE = VENV / "reviewapp-template"
MIN_FREE_BYTES = 2 * 1024**3
INSTALL_TIMEOUT = 1500
FIRST_START_TIMEOUT = 420
START_TIMEOUT = 120


class LabelStudioUnavailable(RuntimeError):
    pass


@contextmanager
def _install_lock() -> Iterator[None]:
    HOME.mkdir(parents=True, exist_ok=True)
    with open(HOME / f"label-studio-{LS_VERSION}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed() -> Path:
    """The Label Studio virtualenv, installed if missing or half-installed."""
    with _install_lock():
        if READY.exists():
            return VENV
        free = shutil.disk_usage(HOME).free
        if free < MIN_FREE_BYTES:
            raise LabelStudioUnavailable(f"need 2 GB free in {HOME} to install label-studio; {free >> 20} MB free")
        shutil.rmtree(VENV, ignore_errors=True)
        started = time.monotonic()
        print(f"\ninstalling label-studio=={LS_VERSION} into {VENV} (once per machine)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, f"label-studio=={LS_VERSION}"], check=True, timeout=INSTALL_TIMEOUT)
        READY.write_text(f"label-studio=={LS_VERSION} installed in {time.monotonic() - started:.0f}s\n")
        return VENV


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabelStudioServer:
    """One Label Studio process on loopback; `stop()` and `start()` keep its port and data."""

    data_dir: Path
    token: str
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"label-studio-{self.port}.log"

    def _env(self) -> dict[str, str]:
        # A clean environment: reviewapp's DATABASE_URL, DJANGO_* and the like must not leak in.
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE")
        env = {key: os.environ[key] for key in keep if key in os.environ}
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=ADMIN_EMAIL,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            SSRF_PROTECTION_ENABLED="false",  # webhooks go to the test server on loopback
            WEBHOOK_TIMEOUT="10",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, timeout: float = START_TIMEOUT) -> None:
        command = [str(VENV / "bin" / "label-studio"), "start", "--internal-host", "127.0.0.1"]
        command += ["--port", str(self.port), "--no-browser"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command,
                env=self._env(),
                cwd=self.data_dir.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise LabelStudioUnavailable(f"label-studio exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:  # noqa: S310 (loopback)
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise LabelStudioUnavailable(
            f"label-studio not healthy on {self.url} after {timeout:.0f}s:\n{self._log_tail()}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return "(no log)"


def _ensure_template() -> tuple[Path, str]:
    """A migrated data folder and its admin token, made once per installation."""
    with _install_lock():
        token_file = TEMPLATE / "token"
        if token_file.exists():
            return TEMPLATE / "data", token_file.read_text().strip()
        shutil.rmtree(TEMPLATE, ignore_errors=True)
        (TEMPLATE / "data").mkdir(parents=True)
        token = secrets.token_hex(20)  # 40 characters, like Label Studio's own tokens
        server = LabelStudioServer(data_dir=TEMPLATE / "data", token=token)
        try:
            server.start(timeout=FIRST_START_TIMEOUT)
        finally:
            server.stop()
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        return TEMPLATE / "data", token


@contextmanager
def running_label_studio(workdir: Path) -> Iterator[LabelStudioServer]:
    """Install if needed, then run a server on a copy of the template until the block exits."""
    ensure_installed()
    template, token = _ensure_template()
    data_dir = workdir / "data"
    shutil.copytree(template, data_dir)
    server = LabelStudioServer(data_dir=data_dir, token=token)
    server.start()
    try:
        yield server
    finally:
        server.stop()
