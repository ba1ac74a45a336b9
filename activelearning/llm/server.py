"""Serve the bundled local model over the OpenAI chat-completions protocol.

    python -m activelearning.llm.server --host 127.0.0.1 --port 8089 --weights-dir .data/llm

Other tools on the machine (a notebook, a prompt-testing tool, another reviewapp) can then use
Gemma 3 270M as they would any OpenAI-compatible endpoint, and reviewapp's own OpenAI backend is
tested against it: real answers of a real model over the real protocol. An LLM reviewer points
at it with base URL `http://127.0.0.1:8089/v1` once an operator lists `127.0.0.1:8089` in
REVIEWAPP_LLM_ALLOWED_HOSTS (loopback is refused otherwise).

Endpoints:
- `GET /v1/models`: the one model, id `gemma3-270m-q4-k-m`.
- `POST /v1/chat/completions`: `model`, `messages` (roles system, user, assistant; text content),
  `max_tokens` (default 16, at most 256), `logprobs` and `top_logprobs` (0-20), `stop`. The
  model is a *base* model with no chat template: the messages' contents are joined by blank
  lines, in order, and the model continues that text, so a prompt ending in a cue ("Label:")
  gets its answer as the next words. Decoding is always greedy (`temperature` is accepted and
  ignored). With `logprobs`, each generated token comes with the model's log-probability and its
  top alternatives, as real token strings of Gemma's tokenizer. `usage` counts tokens.

Errors are OpenAI-style JSON (`{"error": {"message", "type", "code"}}`): 400 for a bad body, 401
for a missing or wrong bearer key when the server has one (`--api-key`, or the environment
variable REVIEWAPP_LLM_SERVER_API_KEY, which other users cannot read from the process list), 404
for another model or path. The model answers one request at a time (a lock): CPU torch on one
machine gains nothing from running two forwards at once. It binds to loopback by default and
refuses another address without an API key. No weights are downloaded: they are the converted
copy under `--weights-dir` (converted from the packaged GGUF on first use).
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import os
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .local import LocalBackend
from .weights import MODEL_ID

MAX_BODY_BYTES = 1_000_000
MAX_PROMPT_TOKENS = 4096
MAX_NEW_TOKENS = 256
DEFAULT_NEW_TOKENS = 16
MAX_TOP_LOGPROBS = 20
ROLES = ("system", "user", "assistant")
KEY_VARIABLE = "REVIEWAPP_LLM_SERVER_API_KEY"


class RequestError(Exception):
    """A request the server answers with an OpenAI-style error."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def chat_text(messages: list[dict[str, Any]]) -> str:
    """The text the model continues: the messages' contents joined by blank lines."""
    return "\n\n".join(message_text(message) for message in messages)


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = [part.get("text") for part in content if isinstance(part, dict) and part.get("type") == "text"]
        if len(parts) == len(content) and all(isinstance(part, str) for part in parts):
            return "".join(parts)  # type: ignore[arg-type]
    if isinstance(content, str):
        return content
    raise RequestError(400, "Each message's content must be text (a string or text parts).")


def check_request(body: Any) -> dict[str, Any]:
    """The generation parameters of a chat-completions body; RequestError when it is not one."""
    if not isinstance(body, dict):
        raise RequestError(400, "The body must be a JSON object.")
    if body.get("model") != MODEL_ID:
        raise RequestError(
            404, f"The model {str(body.get('model'))[:100]!r} does not exist; use {MODEL_ID!r}.", "model_not_found"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list.")
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestError(400, f"Each message needs a role among {', '.join(ROLES)}.")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", DEFAULT_NEW_TOKENS))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_NEW_TOKENS:
        raise RequestError(400, f"'max_tokens' must be an integer from 1 to {MAX_NEW_TOKENS}.")
    top = body.get("top_logprobs", 0) or 0
    if not isinstance(top, int) or isinstance(top, bool) or not 0 <= top <= MAX_TOP_LOGPROBS:
        raise RequestError(400, f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}.")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise RequestError(400, "'stop' must be a string or a list of up to 4 non-empty strings.")
    return {
        "text": chat_text(messages),
        "max_tokens": max_tokens,
        "logprobs": bool(body.get("logprobs")),
        "top_logprobs": top,
        "stop": stop,
    }


class Generator:
    """Greedy generation with the local backend's model, one request at a time."""

    def __init__(self, backend: LocalBackend) -> None:
        self.backend = backend
        self.lock = threading.Lock()

    def generate(self, text: str, max_tokens: int, top_logprobs: int, stop: list[str]) -> dict[str, Any]:
        import torch

        tokenizer, model = self.backend.tokenizer_and_model()
        ids = tokenizer.encode(text, add_special_tokens=True)
        if len(ids) > MAX_PROMPT_TOKENS:
            raise RequestError(
                400, f"The prompt has {len(ids)} tokens; at most {MAX_PROMPT_TOKENS}.", "context_length_exceeded"
            )
        generated: list[int] = []
        positions = []
        finish = "length"
        with self.lock, torch.inference_mode():
            output = model(torch.tensor([ids]), use_cache=True)
            for _ in range(max_tokens):
                logprobs = torch.log_softmax(output.logits[0, -1].float(), dim=-1)
                token = int(torch.argmax(logprobs))
                if token == tokenizer.eos_token_id:
                    finish = "stop"
                    break
                generated.append(token)
                positions.append(self._position(tokenizer, logprobs, token, top_logprobs))
                if stop and any(s in tokenizer.decode(generated) for s in stop):
                    finish = "stop"
                    break
                output = model(torch.tensor([[token]]), cache=output.cache, use_cache=True)
        content = tokenizer.decode(generated, skip_special_tokens=True)
        for s in stop:
            content = content.split(s)[0]
        return {
            "content": content,
            "positions": positions,
            "prompt_tokens": len(ids),
            "completion_tokens": len(generated),
            "finish": finish,
        }

    @staticmethod
    def _position(tokenizer: Any, logprobs: Any, token: int, top: int) -> dict[str, Any]:
        import torch

        def entry(token_id: int, logprob: float) -> dict[str, Any]:
            text = tokenizer.decode([token_id])
            return {"token": text, "logprob": logprob, "bytes": list(text.encode())}

        values, indices = torch.topk(logprobs, top) if top else (torch.empty(0), torch.empty(0, dtype=torch.long))
        alternatives = [entry(int(i), float(v)) for v, i in zip(values, indices, strict=True)]
        return entry(token, float(logprobs[token])) | {"top_logprobs": alternatives}


def completion_body(parameters: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    logprobs = {"content": result["positions"]} if parameters["logprobs"] else None
    if logprobs is not None and not parameters["top_logprobs"]:
        logprobs = {"content": [p | {"top_logprobs": []} for p in result["positions"]]}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result["content"]},
                "logprobs": logprobs,
                "finish_reason": result["finish"],
            }
        ],
        "usage": {
            "prompt_tokens": result["prompt_tokens"],
            "completion_tokens": result["completion_tokens"],
            "total_tokens": result["prompt_tokens"] + result["completion_tokens"],
        },
    }


def make_handler(generator: Generator, api_key: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "reviewapp-llm"

        def do_GET(self) -> None:
            self._answer(self._models)

        def do_POST(self) -> None:
            self._answer(self._chat)

        def _answer(self, endpoint: Any) -> None:
            try:
                self._authorise()
                status, body = endpoint()
            except RequestError as error:
                kind = {401: "authentication_error", 404: "not_found_error"}.get(error.status, "invalid_request_error")
                status, body = error.status, {"error": {"message": error.message, "type": kind, "code": error.code}}
            except Exception as error:
                self.log_error("internal error: %r", error)
                status, body = 500, {"error": {"message": "Internal error.", "type": "server_error", "code": None}}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status >= 400:  # the body may be unread: this connection cannot carry another request
                self.close_connection = True
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)

        def _authorise(self) -> None:
            if not api_key:
                return
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                raise RequestError(401, "Invalid API key.", "invalid_api_key")

        def _models(self) -> tuple[int, dict[str, Any]]:
            if self.path.rstrip("/") != "/v1/models":
                raise RequestError(404, "No such path.", "not_found")
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "reviewapp"}
            return 200, {"object": "list", "data": [model]}

        def _chat(self) -> tuple[int, dict[str, Any]]:
            if self.path.rstrip("/") != "/v1/chat/completions":
                raise RequestError(404, "No such path.", "not_found")
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                raise RequestError(411, "A Content-Length header is required.") from None
            if not 0 < length <= MAX_BODY_BYTES:
                raise RequestError(413 if length > 0 else 400, f"The body must be 1 to {MAX_BODY_BYTES} bytes.")
            try:
                body = json.loads(self.rfile.read(length))
            except (ValueError, UnicodeDecodeError):
                raise RequestError(400, "The body is not valid JSON.") from None
            parameters = check_request(body)
            top = parameters["top_logprobs"] if parameters["logprobs"] else 0
            result = generator.generate(parameters["text"], parameters["max_tokens"], top, parameters["stop"])
            return 200, completion_body(parameters, result)

    return Handler


def serve(host: str, port: int, weights_dir: Path, api_key: str, threads: int) -> None:
    if not api_key and not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"Refusing to serve on {host} without an API key (--api-key or {KEY_VARIABLE}).")
    backend = LocalBackend(weights_dir, threads=threads)
    backend.load()
    server = ThreadingHTTPServer((host, port), make_handler(Generator(backend), api_key))
    print(f"Serving {MODEL_ID} on http://{host}:{server.server_port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the bundled LLM over the OpenAI chat-completions protocol.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--weights-dir", type=Path, default=Path(".data/llm"))
    parser.add_argument("--api-key", default=os.environ.get(KEY_VARIABLE, ""))
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.weights_dir, args.api_key, args.threads)


if __name__ == "__main__":
    main()
