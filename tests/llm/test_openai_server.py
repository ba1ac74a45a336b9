"""The protocol server serving the bundled model: OpenAI-style answers with real token
log-probabilities, and OpenAI-style errors for a missing key and bad bodies."""

from __future__ import annotations

import math

import httpx
import pytest

from activelearning.llm.weights import MODEL_ID
from tests.llm.conftest import PROTOCOL_SERVER_KEY

pytestmark = pytest.mark.slow  # the model server process

AUTH = {"Authorization": f"Bearer {PROTOCOL_SERVER_KEY}"}


def _chat(base_url: str, body: object, headers: dict[str, str] = AUTH) -> httpx.Response:
    return httpx.post(f"{base_url}/chat/completions", json=body, headers=headers, timeout=120)


def test_it_lists_its_model_and_generates_greedily_with_real_logprobs(llm_protocol_server):  # type: ignore[no-untyped-def]
    models = httpx.get(f"{llm_protocol_server}/models", headers=AUTH).json()
    assert [m["id"] for m in models["data"]] == [MODEL_ID]
    body = {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "The capital of France is"}],
        "max_tokens": 3,
        "logprobs": True,
        "top_logprobs": 5,
    }
    first, second = _chat(llm_protocol_server, body).json(), _chat(llm_protocol_server, body).json()
    assert first["choices"][0]["message"] == second["choices"][0]["message"]  # greedy: the same answer
    positions = first["choices"][0]["logprobs"]["content"]
    assert 1 <= len(positions) == first["usage"]["completion_tokens"] <= 3
    assert "".join(p["token"] for p in positions) == first["choices"][0]["message"]["content"]
    for position in positions:
        top = position["top_logprobs"]
        assert len(top) == 5 and top[0]["token"] == position["token"]  # the chosen token is the most probable
        assert [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
        assert sum(math.exp(t["logprob"]) for t in top) <= 1 + 1e-6
    assert first["usage"]["prompt_tokens"] > 3


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": MODEL_ID}, 400, "'messages' must be a non-empty list"),
        ({"model": MODEL_ID, "messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
        ({"model": MODEL_ID, "messages": [{"role": "user", "content": 5}]}, 400, "content must be text"),
        ({"model": MODEL_ID, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
        ({"model": MODEL_ID, "messages": [{"role": "user", "content": "x"}], "top_logprobs": 21}, 400, "top_logprobs"),
        ({"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]}, 404, "does not exist"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_a_bad_body_gets_an_openai_style_error(llm_protocol_server, body, status, message):  # type: ignore[no-untyped-def]
    response = _chat(llm_protocol_server, body)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


def test_a_body_that_is_not_json_is_a_400(llm_protocol_server):  # type: ignore[no-untyped-def]
    response = httpx.post(f"{llm_protocol_server}/chat/completions", content=b"{nope", headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": PROTOCOL_SERVER_KEY}])
def test_a_missing_or_wrong_key_is_a_401(llm_protocol_server, headers):  # type: ignore[no-untyped-def]
    response = httpx.get(f"{llm_protocol_server}/models", headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
