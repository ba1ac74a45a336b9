"""A scripted HTTP server for the OpenAI backend's failure tests: it answers each request with the
next step of its script, and once the script is spent forwards to the real protocol server
(optionally rewriting the real answer), so a test sees exactly which requests the backend sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass(frozen=True)
class Step:
    status: int
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


def json_step(status: int, body: Any, **headers: str) -> Step:
    return Step(status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})


def chat_answer(content: str, logprobs: Any = None) -> Step:
    """A 200 chat completion saying `content`."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": logprobs}
    usage = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    return json_step(200, {"choices": [choice], "usage": usage})


@dataclass
class ScriptedServer:
    url: str
    requests: list[dict[str, Any]]  # {"path", "authorization", "body"} of each request received


@contextmanager
def scripted_server(
    script: list[Step],
    *,
    upstream: str | None = None,
    rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    forward_when: Callable[[dict[str, Any]], bool] = lambda body: True,
) -> Iterator[ScriptedServer]:
    """`upstream` is the real server's base URL (`.../v1`); `forward_when(body)` false answers a
    400 instead of forwarding (a server refusing some parameter)."""
    steps = list(script)
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = json.loads(raw or b"{}")
            with lock:
                received.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
                step = steps.pop(0) if steps else None
            if step is None:
                step = self._forward(raw, body)
            self.send_response(step.status)
            for name, value in step.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(step.body)))
            self.end_headers()
            self.wfile.write(step.body)

        def _forward(self, raw: bytes, body: dict[str, Any]) -> Step:
            if upstream is None:
                return json_step(500, {"error": {"message": "script spent"}})
            if not forward_when(body):
                return json_step(400, {"error": {"message": "logprobs are not supported by this model"}})
            path = self.path.removeprefix("/v1")
            headers = {"Authorization": self.headers.get("Authorization", ""), "Content-Type": "application/json"}
            response = httpx.post(f"{upstream}{path}", content=raw, headers=headers, timeout=120)
            answer = response.json()
            if rewrite is not None and response.status_code == 200:
                answer = rewrite(answer)
            return json_step(response.status_code, answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ScriptedServer(f"http://127.0.0.1:{server.server_port}/v1", received)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
