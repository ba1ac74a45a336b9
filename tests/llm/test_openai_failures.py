"""The OpenAI backend when the endpoint misbehaves: it retries what is transient (503, 429 with
Retry-After) and then gets the real server's answer, gives up with BackendUnavailable when
retries run out, and abstains, never guessing, on answers it cannot map onto the label set."""

from __future__ import annotations

import email.utils
import math
import time

import httpx
import pytest

from activelearning.llm.base import BackendUnavailable, LabelChoice, PolicyPrompt
from activelearning.llm.openai import MAX_RETRY_WAIT, OpenAIBackend, retry_after_seconds
from activelearning.llm.weights import MODEL_ID
from tests.llm.conftest import PROTOCOL_SERVER_KEY
from tests.llm.proxy import Step, chat_answer, json_step, scripted_server
from tests.llm.samples import SAMPLE_TEXTS, two_label_prompt

BUSY = json_step(503, {"error": {"message": "overloaded"}})


def _backend(url: str, **kwargs) -> OpenAIBackend:  # type: ignore[no-untyped-def]
    return OpenAIBackend(url, MODEL_ID, PROTOCOL_SERVER_KEY, max_tokens=4, backoff_seconds=0.05, **kwargs)


@pytest.mark.slow
def test_it_retries_503_and_429_then_answers_from_the_real_server(llm_protocol_server):  # type: ignore[no-untyped-def]
    limited = json_step(429, {"error": {"message": "slow down"}}, **{"Retry-After": "1"})
    with scripted_server([BUSY, limited, BUSY], upstream=llm_protocol_server) as proxy:
        (judgement,) = _backend(proxy.url).judge(two_label_prompt(), [SAMPLE_TEXTS[0]])
    assert judgement.label in two_label_prompt().label_values and judgement.scores
    assert len(proxy.requests) == 4
    assert all(r["authorization"] == f"Bearer {PROTOCOL_SERVER_KEY}" for r in proxy.requests)
    assert len({str(r["body"]) for r in proxy.requests}) == 1  # the same request each time


def test_it_gives_up_after_its_retries_with_backend_unavailable():
    gives_up = pytest.raises(BackendUnavailable, match=r"after 3 attempts.*503")
    with scripted_server([BUSY] * 3) as proxy, gives_up as gave_up:
        _backend(proxy.url, max_retries=2).judge(two_label_prompt(), [SAMPLE_TEXTS[0]])
    assert len(proxy.requests) == 3
    assert PROTOCOL_SERVER_KEY not in str(gave_up.value)


def test_an_unreachable_endpoint_is_unavailable():
    with scripted_server([]) as proxy:
        url = proxy.url  # closed when the block ends: nothing listens there any more
    with pytest.raises(BackendUnavailable, match="ConnectError"):
        _backend(url, max_retries=1).judge(two_label_prompt(), [SAMPLE_TEXTS[0]])


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (json_step(200, {"unexpected": True}), "unreadable"),
        (chat_answer("Violating, because it insults someone."), "neither scored"),
        (chat_answer('{"label": "spam"}'), "outside the set"),
        (chat_answer('{"label": "violating", "confidence": 0.9}'), "not {"),
        (chat_answer("[1, 2]"), "not {"),
    ],
    ids=["no-message", "free-text", "label-outside-set", "extra-keys", "not-an-object"],
)
def test_an_answer_that_names_no_label_of_the_set_is_an_abstention(answer, reason):  # type: ignore[no-untyped-def]
    with scripted_server([answer]) as proxy:
        (judgement,) = _backend(proxy.url).judge(two_label_prompt(), [SAMPLE_TEXTS[0]])
    assert judgement.abstained and reason in judgement.abstain_reason


def test_a_body_that_is_not_json_is_an_abstention():
    with scripted_server([Step(200, b"<html>gateway</html>", {"Content-Type": "text/html"})]) as proxy:
        (judgement,) = _backend(proxy.url).judge(two_label_prompt(), [SAMPLE_TEXTS[0]])
    assert judgement.abstained and "unreadable" in judgement.abstain_reason


def test_without_logprobs_a_strict_json_answer_names_the_label():
    with scripted_server(
        [chat_answer(' {"label": "not_violating"}\n'), chat_answer('{"label": "Violating"}')]
    ) as proxy:
        judgements = _backend(proxy.url).judge(two_label_prompt(), SAMPLE_TEXTS[:2])
    assert [j.label for j in judgements] == ["not_violating", "violating"]  # a value, or a title exactly
    assert judgements[0].scores == {} and judgements[0].prompt_tokens == 7


def test_a_logprob_token_starting_two_labels_falls_back_to_the_json_answer():
    """ "Not" starts both "Not violating" and "Not sure": the scores cannot tell them apart."""
    prompt = PolicyPrompt(
        two_label_prompt().template,
        "Harassment",
        "Insults are violating.",
        (LabelChoice("not_violating", "Not violating"), LabelChoice("unsure", "Not sure")),
    )
    position = {"token": "Not", "logprob": -0.1, "top_logprobs": [{"token": "Not", "logprob": -0.1}]}
    with scripted_server([chat_answer('{"label": "unsure"}', logprobs={"content": [position]})]) as proxy:
        (judgement,) = _backend(proxy.url).judge(prompt, [SAMPLE_TEXTS[0]])
    assert judgement.label == "unsure" and judgement.scores == {}


def test_logprobs_are_read_where_the_answer_names_a_label_not_at_its_first_word():
    prompt = PolicyPrompt(
        two_label_prompt().template,
        "Harassment",
        "Insults are violating.",
        (LabelChoice("insult", "Insult"), LabelChoice("fine", "Fine")),
    )
    first = {"token": "I", "logprob": -0.1, "top_logprobs": [{"token": "I", "logprob": -0.1}]}
    named = {
        "token": " insult",
        "logprob": -0.2,
        "top_logprobs": [
            {"token": " insult", "logprob": -0.2},
            {"token": " Fine", "logprob": -1.8},
            {"token": " the", "logprob": -2.0},
        ],
    }
    with scripted_server([chat_answer("I insult", logprobs={"content": [first, named]})]) as proxy:
        (judgement,) = _backend(proxy.url).judge(prompt, [SAMPLE_TEXTS[0]])
    expected = math.exp(-0.2) / (math.exp(-0.2) + math.exp(-1.8))
    assert judgement.label == "insult"
    assert judgement.scores == pytest.approx({"insult": expected, "fine": 1 - expected})


def test_a_client_error_on_one_item_is_that_items_abstention():
    refused = json_step(400, {"error": {"message": "content too long"}})
    with scripted_server([refused, chat_answer('{"label": "violating"}')]) as proxy:
        judgements = _backend(proxy.url).judge(two_label_prompt(), SAMPLE_TEXTS[:2])
    assert judgements[0].abstained and "content too long" in judgements[0].abstain_reason
    assert judgements[1].label == "violating"


@pytest.mark.slow
def test_real_answers_stripped_of_logprobs_are_judged_by_their_text_alone(llm_protocol_server):  # type: ignore[no-untyped-def]
    """The base model rarely writes valid JSON: without log-probabilities it mostly abstains, and
    whatever it does label is a strict JSON answer of the set."""

    def strip(answer):  # type: ignore[no-untyped-def]
        answer["choices"][0]["logprobs"] = None
        return answer

    with scripted_server([], upstream=llm_protocol_server, rewrite=strip) as proxy:
        judgements = _backend(proxy.url).judge(two_label_prompt(), SAMPLE_TEXTS[:3])
    for judgement in judgements:
        assert judgement.scores == {}
        assert judgement.abstained or judgement.label in two_label_prompt().label_values
        assert judgement.prompt_tokens > 0


@pytest.mark.slow
def test_a_server_refusing_logprobs_is_asked_again_without_them(llm_protocol_server):  # type: ignore[no-untyped-def]
    with scripted_server([], upstream=llm_protocol_server, forward_when=lambda body: "logprobs" not in body) as proxy:
        backend = _backend(proxy.url)
        judgements = backend.judge(two_label_prompt(), SAMPLE_TEXTS[:2])
    assert ["logprobs" in r["body"] for r in proxy.requests] == [True, False, False]
    assert all(j.scores == {} and j.prompt_tokens > 0 for j in judgements)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("86400", MAX_RETRY_WAIT), ("soon", None), ("", None)],
)
def test_retry_after_is_read_in_seconds_and_capped(header, expected):  # type: ignore[no-untyped-def]
    response = httpx.Response(429, headers={"Retry-After": header} if header else {})
    assert retry_after_seconds(response) == expected


def test_retry_after_may_be_an_http_date():
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    waited = retry_after_seconds(httpx.Response(503, headers={"Retry-After": later}))
    assert waited is not None and 25 <= waited <= 31
