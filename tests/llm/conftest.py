"""Fixtures for the LLM tests: the bundled model behind a real OpenAI-compatible server process.

`llm_protocol_server` (session) is the base URL (`http://127.0.0.1:<port>/v1`) of
`python -m activelearning.llm.server` started on a free loopback port with the API key
`PROTOCOL_SERVER_KEY`; its log goes to test-artifacts/llm-server.log. A Django-side test that
points an LLM reviewer at it also needs `llm_endpoint_allowed` (the address policy refuses
loopback unless an operator lists it). The model is the converted copy in settings.LLM_WEIGHTS_DIR:
nothing is downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from django.conf import settings

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PROTOCOL_SERVER_KEY = "test-protocol-server-key-9f3a"
STARTUP_SECONDS = 600  # a first use converts the packaged GGUF: minutes on a busy machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_serving(process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    headers = {"Authorization": f"Bearer {PROTOCOL_SERVER_KEY}"}
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The LLM protocol server exited ({process.returncode}); see {log}")
        try:
            if httpx.get(f"{base_url}/models", headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling a process that is loading a model: no event to await
    raise RuntimeError(f"The LLM protocol server did not answer within {STARTUP_SECONDS} s; see {log}")


@pytest.fixture(scope="session")
def llm_protocol_server() -> Iterator[str]:
    """The base URL of a running protocol server backed by the local model (one torch thread)."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "llm-server.log"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "activelearning.llm.server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--weights-dir", str(settings.LLM_WEIGHTS_DIR), "--threads", "1"]
    env = os.environ | {"REVIEWAPP_LLM_SERVER_API_KEY": PROTOCOL_SERVER_KEY, "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as output:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_until_serving(process, base_url, log)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def llm_endpoint_allowed(settings, llm_protocol_server):  # type: ignore[no-untyped-def]
    """Lists the protocol server's host:port in LLM_ALLOWED_HOSTS for this test, as an operator would."""
    settings.LLM_ALLOWED_HOSTS = [urlsplit(llm_protocol_server).netloc]
    return llm_protocol_server


@pytest.fixture(scope="session", autouse=True)
def llm_weights_converted() -> Path:
    """The packaged model converted once, before any test times a worker or a server that would
    otherwise do it inside its own deadline (a fresh clone converts on first use: a minute or more)."""
    from activelearning.llm.weights import converted_dir

    return converted_dir(settings.LLM_WEIGHTS_DIR)
