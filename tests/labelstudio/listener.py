"""A loopback HTTP listener standing in for whatever a typed-in Label Studio URL points at: it
records every request (method, path, headers) and answers with a fixed status and body."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Listener:
    status: int
    body: bytes
    port: int = 0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def loopback_listener(status: int = 200, body: bytes = b"{}") -> Iterator[Listener]:
    listener = Listener(status, body)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            listener.requests.append((self.command, self.path, dict(self.headers)))
            self.send_response(listener.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(listener.body)))
            self.end_headers()
            self.wfile.write(listener.body)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    listener.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
