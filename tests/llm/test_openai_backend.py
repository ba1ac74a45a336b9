"""The OpenAI-compatible backend against a real server process speaking the protocol, backed by
the local model: real answers from a real model, label choice by the log-probabilities the
server returns, and the same model giving the same labels on both paths."""

from __future__ import annotations

import math

import pytest
import torch
from django.conf import settings

from activelearning.llm.base import BackendUnavailable, PolicyPrompt
from activelearning.llm.local import LocalBackend
from activelearning.llm.openai import OpenAIBackend, messages_for
from activelearning.llm.server import chat_text
from activelearning.llm.weights import MODEL_ID
from tests.llm.conftest import PROTOCOL_SERVER_KEY
from tests.llm.samples import SAMPLE_TEXTS, two_label_prompt

pytestmark = pytest.mark.slow  # a model server process, a few seconds per item


@pytest.fixture
def backend(llm_protocol_server):  # type: ignore[no-untyped-def]
    backend = OpenAIBackend(llm_protocol_server, MODEL_ID, PROTOCOL_SERVER_KEY, max_tokens=4)
    yield backend
    backend.close()


def _as_the_server_reads_it(prompt: PolicyPrompt) -> PolicyPrompt:
    """The prompt whose rendering is the text the server's model continues for `prompt`'s request:
    the system message, a blank line, the user message (braces of the system text escaped)."""
    system, _ = messages_for(prompt, "")
    escaped = system["content"].replace("{", "{{").replace("}", "}}")
    template = chat_text([{"role": "system", "content": escaped}, {"role": "user", "content": prompt.template}])
    return PolicyPrompt(template, prompt.policy_name, prompt.guideline, prompt.labels)


def test_a_real_answer_is_chosen_by_the_servers_logprobs(backend):  # type: ignore[no-untyped-def]
    prompt = two_label_prompt()
    judgements = backend.judge(prompt, SAMPLE_TEXTS[:2])
    for judgement in judgements:
        assert judgement.label in prompt.label_values
        assert set(judgement.scores) == set(prompt.label_values)  # scores exist only on the logprobs path
        assert math.isclose(sum(judgement.scores.values()), 1.0, abs_tol=1e-9)
        assert judgement.label == max(judgement.scores, key=judgement.scores.__getitem__)
        assert judgement.prompt_tokens > 100 and 0 < judgement.completion_tokens <= 4


def test_it_agrees_with_the_local_backends_uncalibrated_choice_on_the_same_text(backend):  # type: ignore[no-untyped-def]
    """Same model, same text: the label the server's top tokens favour is the label the local
    backend's next-token scores favour (the probabilities differ: the remote side adds up every
    top token that starts a label, the local side reads one token per label)."""
    torch.set_num_threads(1)
    prompt = two_label_prompt()
    local = LocalBackend(settings.LLM_WEIGHTS_DIR, threads=1, calibrate=False)
    expected = [j.label for j in local.judge(_as_the_server_reads_it(prompt), SAMPLE_TEXTS)]
    assert [j.label for j in backend.judge(prompt, SAMPLE_TEXTS)] == expected


def test_a_wrong_key_is_refused_without_the_key_in_the_error(llm_protocol_server):  # type: ignore[no-untyped-def]
    wrong = "sk-wrong-key-that-must-not-leak"
    backend = OpenAIBackend(llm_protocol_server, MODEL_ID, wrong, max_retries=0)
    with pytest.raises(BackendUnavailable, match="refused the API key") as refused:
        backend.judge(two_label_prompt(), [SAMPLE_TEXTS[0]])
    assert wrong not in str(refused.value) and wrong not in repr(refused.value)
    assert wrong not in repr(backend)


def test_an_unknown_model_makes_the_backend_unavailable(llm_protocol_server):  # type: ignore[no-untyped-def]
    backend = OpenAIBackend(llm_protocol_server, "no-such-model", PROTOCOL_SERVER_KEY, max_retries=0)
    with pytest.raises(BackendUnavailable, match="does not know this model"):
        backend.judge(two_label_prompt(), [SAMPLE_TEXTS[0]])


def test_empty_content_is_an_abstention_without_a_request(backend):  # type: ignore[no-untyped-def]
    (judgement,) = backend.judge(two_label_prompt(), ["   "])
    assert judgement.abstained and judgement.prompt_tokens == 0
