"""A backend for any OpenAI-compatible chat-completions endpoint (vLLM, Ollama, llama.cpp server,
LM Studio, hosted APIs, or the bundled model's own server: `activelearning.llm.server`).

One request per item: a system message that asks for `{"label": "<value>"}` and names the label
values, and the rendered policy prompt (`prompts.render`: policy, labels, the content in its
delimited block) as the user message; greedy (`temperature: 0`), a few tokens, and the
log-probabilities of the top 20 tokens at each position.

Label choice, never a guess:
1. By log-probabilities, where the answer carries them: at the first generated position whose
   token (of two characters or more) starts the value or title of exactly one label, each label takes the probability of
   the top tokens that start its value or title, renormalised over the labels found there. A
   server's tokenizer is unknown here, so when a top token starts two labels (their first
   tokens collide) or no position names a label, this step gives no answer.
2. Else by a strict JSON answer: the whole message is `{"label": "<value>"}` with a value of the
   set (or exactly one label's title).
3. Anything else is an abstention with its reason.

Transient failures (HTTP 429 and 5xx, connection errors, timeouts) are retried with exponential
backoff and jitter, honouring Retry-After; when retries run out, or the endpoint refuses the key
(401/403) or the model (404), `BackendUnavailable` is raised for the caller to retry the chunk
later. Any other refusal of one request is that item's abstention. The API key goes only into
the Authorization header: it never appears in an exception, an abstention reason or a repr.
"""

from __future__ import annotations

import email.utils
import json
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from .base import BackendUnavailable, Judgement, LabelChoice, PolicyPrompt
from .prompts import render

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
CONFIG_STATUSES = {401: "refused the API key", 403: "refused the API key", 404: "does not know this model or path"}
MAX_RETRY_WAIT = 60.0
ERROR_EXCERPT = 300


class EndpointRefused(httpx.TransportError):
    """Raised by an injected transport that will not connect (an address policy's refusal): not
    retried, reported as BackendUnavailable with its message."""


@dataclass(frozen=True)
class _Answer:
    """What one chat completion said, reduced to what label choice needs."""

    text: str
    positions: list[tuple[str, list[tuple[str, float]]]]  # (chosen token, [(top token, logprob)])
    prompt_tokens: int
    completion_tokens: int


def system_message(labels: tuple[LabelChoice, ...]) -> str:
    """The answer format: a JSON object naming one label value."""
    listed = "\n".join(f"- {label.value} ({label.title})" for label in labels)
    return (
        'You label content against a policy. Reply with only a JSON object {"label": "<value>"}, '
        f"where <value> is exactly one of these label values:\n{listed}"
    )


def messages_for(prompt: PolicyPrompt, content: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system_message(prompt.labels)},
        {"role": "user", "content": render(prompt, content)},
    ]


def _matches(token: str, label: LabelChoice) -> bool:
    """True when `token` starts the label's value or title. A one-character token ("I", "-")
    names a label only when that is the whole value or title: otherwise it is rather a word of
    a sentence or of the answer's syntax."""
    piece = token.strip().lower()
    names = (label.value.lower(), label.title.lower())
    if len(piece) < 2:
        return bool(piece) and piece in names
    return any(name.startswith(piece) for name in names)


def choose_by_logprobs(labels: tuple[LabelChoice, ...], answer: _Answer) -> dict[str, float] | None:
    """Label probabilities read at the first position that names a label; None when there is
    none, or when a token there starts two labels (collision: the server's tokens cannot tell
    them apart)."""
    for chosen, top in answer.positions:
        owners = [label for label in labels if _matches(chosen, label)]
        if not owners:
            continue
        if len(owners) > 1:
            return None
        mass = dict.fromkeys((label.value for label in labels), 0.0)
        for token, logprob in top:
            found = [label for label in labels if _matches(token, label)]
            if len(found) > 1:
                return None
            if found and math.isfinite(logprob):
                mass[found[0].value] += math.exp(logprob)
        total = sum(mass.values())
        if total <= 0:
            return None
        return {value: p / total for value, p in mass.items()}
    return None


def choose_by_json(labels: tuple[LabelChoice, ...], text: str) -> tuple[str | None, str]:
    """(label value, "") for a strict `{"label": ...}` answer naming one label; else (None, why)."""
    try:
        parsed = json.loads(text.strip())
    except ValueError:
        return None, "The answer was neither scored by log-probabilities nor valid JSON."
    if not isinstance(parsed, dict) or set(parsed) != {"label"} or not isinstance(parsed["label"], str):
        return None, 'The answer was JSON but not {"label": "<value>"}.'
    said = parsed["label"]
    if said in {label.value for label in labels}:
        return said, ""
    titled = [label.value for label in labels if label.title.casefold() == said.strip().casefold()]
    if len(titled) == 1:
        return titled[0], ""
    return None, f"The answer named a label outside the set: {said[:80]!r}."


def parse_answer(body: Any) -> _Answer:
    """The answer of a chat-completions response body; ValueError when it has no message."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise ValueError("The response has no choices[0].message.content.") from None
    if not isinstance(text, str):
        raise ValueError("The response's message content is not text.")
    positions = []
    content = ((choice.get("logprobs") or {}) if isinstance(choice, dict) else {}).get("content") or []
    for entry in content if isinstance(content, list) else []:
        try:
            top = [(str(t["token"]), float(t["logprob"])) for t in entry.get("top_logprobs") or []]
            positions.append((str(entry["token"]), top))
        except (KeyError, TypeError, ValueError, AttributeError):
            positions = []  # malformed log-probabilities: judged by the text alone
            break
    usage = body.get("usage") or {}
    return _Answer(
        text=text,
        positions=positions,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
    )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The wait a Retry-After header asks for (seconds or an HTTP date), capped; None without one."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_WAIT)


class OpenAIBackend:
    """Labels content through an OpenAI-compatible `/chat/completions` endpoint under `base_url`.

    `timeout` (seconds) bounds each request; `max_retries` is the number of retries after the
    first attempt of a request; `requests_per_minute` (0: unlimited) spaces requests of this
    backend object evenly. `transport` is an httpx transport to send through (the address
    policy's, which checks each connection). Thread-safe.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str,
        *,
        timeout: float = 30,
        max_retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        requests_per_minute: int = 0,
        max_tokens: int = 24,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max_retries
        self.max_tokens = max_tokens
        self.backoff_seconds = backoff_seconds
        self._interval = 60.0 / requests_per_minute if requests_per_minute > 0 else 0.0
        self._next_slot = 0.0
        self._slot_lock = threading.Lock()
        self._api_key = api_key
        self._logprobs = True  # switched off once the endpoint says it does not support them
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=timeout, transport=transport, follow_redirects=False, trust_env=False
        )

    def __repr__(self) -> str:
        return f"<OpenAIBackend {self.model_key}>"

    @property
    def model_key(self) -> str:
        return f"openai:{self.base_url}#{self.model}"

    def close(self) -> None:
        self._client.close()

    def judge(self, prompt: PolicyPrompt, contents: list[str]) -> list[Judgement]:
        return [self._judge_one(prompt, text) if text.strip() else _abstain("No text to read.") for text in contents]

    def _judge_one(self, prompt: PolicyPrompt, content: str) -> Judgement:
        started = time.perf_counter()
        response = self._complete(messages_for(prompt, content))
        latency = (time.perf_counter() - started) * 1000
        if response.status_code >= 400:
            return _abstain(f"The endpoint refused the request: {self._describe(response)}", latency)
        try:
            answer = parse_answer(response.json())
        except ValueError as error:
            return _abstain(f"The endpoint's answer was unreadable: {self._scrub(str(error))}", latency)
        scores = choose_by_logprobs(prompt.labels, answer)
        label, reason = None, ""
        if scores is not None:
            label = max(prompt.label_values, key=lambda value: scores[value])
        else:
            label, reason = choose_by_json(prompt.labels, answer.text)
        return Judgement(
            label=label,
            scores=scores or {},
            abstain_reason=reason,
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            latency_ms=latency,
        )

    def _complete(self, messages: list[dict[str, str]]) -> httpx.Response:
        """The endpoint's final response to one completion (a non-retryable status included);
        BackendUnavailable when it could not be had."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": 0}
        body["max_tokens"] = self.max_tokens
        for attempt in range(self.max_retries + 1):
            if self._logprobs:
                body |= {"logprobs": True, "top_logprobs": 20}
            self._wait_for_slot()
            wait = None
            try:
                response = self._client.post(f"{self.base_url}/chat/completions", json=body)
            except EndpointRefused as error:
                raise BackendUnavailable(self._scrub(str(error))) from None
            except httpx.HTTPError as error:
                problem = f"{type(error).__name__}: {self._scrub(str(error))}"
            else:
                if response.status_code in CONFIG_STATUSES:
                    raise BackendUnavailable(
                        f"The endpoint {CONFIG_STATUSES[response.status_code]}: {self._describe(response)}"
                    )
                if response.status_code == 400 and self._logprobs and "logprob" in response.text.lower():
                    self._logprobs = False  # asked again at once, without log-probabilities
                    return self._complete(messages)
                if response.status_code not in RETRY_STATUSES:
                    return response
                problem, wait = self._describe(response), retry_after_seconds(response)
            if attempt == self.max_retries:
                break
            if wait is None:
                wait = min(self.backoff_seconds * 2**attempt, MAX_RETRY_WAIT) * (1 + random.random() / 2)  # noqa: S311 (jitter, not a secret)
            time.sleep(wait)
        raise BackendUnavailable(f"The endpoint did not answer after {self.max_retries + 1} attempts: {problem}")

    def _wait_for_slot(self) -> None:
        if not self._interval:
            return
        with self._slot_lock:
            now = time.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self._interval
        if slot > now:
            time.sleep(slot - now)

    def _describe(self, response: httpx.Response) -> str:
        """HTTP status and the server's error message, short, without the key."""
        message = response.text
        try:
            error = response.json().get("error")
            message = error.get("message", message) if isinstance(error, dict) else str(error or message)
        except (ValueError, AttributeError):
            pass
        return self._scrub(f"HTTP {response.status_code}: {message.strip()[:ERROR_EXCERPT]}")

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "[key]") if self._api_key else text


def _abstain(reason: str, latency_ms: float = 0.0) -> Judgement:
    return Judgement(label=None, abstain_reason=reason, latency_ms=latency_ms)
