"""The local backend on the real Gemma 3 270M: answers in the label set, probabilities that sum to
one, abstention when there is nothing to read, and the fast paths (a reused prompt prefix, padded
batches) computing exactly what one plain forward of the whole prompt computes."""

from __future__ import annotations

import math

import pytest
import torch
from django.conf import settings

from activelearning.llm.base import LabelChoice, PolicyPrompt
from activelearning.llm.local import LocalBackend
from activelearning.llm.prompts import render, split_at_content
from tests.llm.samples import SAMPLE_TEXTS, two_label_prompt


@pytest.fixture(scope="module")
def raw_backend() -> LocalBackend:
    torch.set_num_threads(1)
    backend = LocalBackend(settings.LLM_WEIGHTS_DIR, threads=1, calibrate=False)
    backend.load()
    return backend


@pytest.fixture(scope="module")
def calibrated_backend(raw_backend) -> LocalBackend:  # type: ignore[no-untyped-def]
    backend = LocalBackend(settings.LLM_WEIGHTS_DIR, threads=1, calibrate=True)
    backend.__dict__["_loaded"] = raw_backend.tokenizer_and_model()  # one copy of the weights
    return backend


def _whole_prompt_ids(backend: LocalBackend, prompt: PolicyPrompt, text: str) -> list[int]:
    """The token ids of the whole prompt as the backend reads it: prefix (with BOS), content, suffix."""
    tokenizer, _ = backend.tokenizer_and_model()
    before, after = split_at_content(prompt)
    middle = render(prompt, text)[len(before) : -len(after)]
    return [
        *tokenizer.encode(before, add_special_tokens=True),
        *tokenizer.encode(middle, add_special_tokens=False),
        *tokenizer.encode(after, add_special_tokens=False),
    ]


def _full_forward_logprobs(backend: LocalBackend, ids: list[int]) -> torch.Tensor:
    _, model = backend.tokenizer_and_model()
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0]
    return torch.log_softmax(logits.float(), dim=-1)


def test_every_answer_is_a_label_of_the_set_with_probabilities_summing_to_one(calibrated_backend, raw_backend):  # type: ignore[no-untyped-def]
    prompt = two_label_prompt()
    for backend in (calibrated_backend, raw_backend):
        judgements = backend.judge(prompt, SAMPLE_TEXTS)
        assert len(judgements) == len(SAMPLE_TEXTS)
        for judgement in judgements:
            assert judgement.label in prompt.label_values
            assert set(judgement.scores) == set(prompt.label_values)
            assert math.isclose(sum(judgement.scores.values()), 1.0, abs_tol=1e-5)
            assert judgement.label == max(judgement.scores, key=judgement.scores.__getitem__)
            assert judgement.prompt_tokens > 0


def test_it_abstains_on_content_without_text_and_answers_the_rest_in_order(raw_backend):  # type: ignore[no-untyped-def]
    judgements = raw_backend.judge(two_label_prompt(), ["", SAMPLE_TEXTS[0], "  \n\t"])
    assert [j.abstained for j in judgements] == [True, False, True]
    assert judgements[0].abstain_reason and judgements[2].abstain_reason
    assert judgements[1].scores == raw_backend.judge(two_label_prompt(), [SAMPLE_TEXTS[0]])[0].scores


def test_the_reused_prefix_and_padded_batch_equal_one_forward_of_the_whole_prompt(raw_backend):  # type: ignore[no-untyped-def]
    prompt = two_label_prompt()
    texts = [SAMPLE_TEXTS[1], "Short.", SAMPLE_TEXTS[0] * 3]  # different lengths: right padding in one batch
    firsts = raw_backend.label_first_tokens(prompt)
    assert firsts is not None
    for text, judgement in zip(texts, raw_backend.judge(prompt, texts), strict=True):
        ids = _whole_prompt_ids(raw_backend, prompt, text)
        expected = torch.softmax(_full_forward_logprobs(raw_backend, ids)[-1, firsts], dim=-1).tolist()
        got = [judgement.scores[value] for value in prompt.label_values]
        assert got == pytest.approx(expected, abs=1e-4)
        assert judgement.prompt_tokens == len(ids)


def test_titles_sharing_their_first_token_are_scored_by_the_whole_title(raw_backend):  # type: ignore[no-untyped-def]
    prompt = PolicyPrompt(
        template=two_label_prompt().template,
        policy_name="Harassment",
        guideline="Insults aimed at a person are violating; unclear cases are not sure.",
        labels=(LabelChoice("not_violating", "Not violating"), LabelChoice("unsure", "Not sure")),
    )
    assert raw_backend.label_first_tokens(prompt) is None  # " Not" starts both titles
    tokenizer, _ = raw_backend.tokenizer_and_model()
    titles = [tokenizer.encode(" " + label.title, add_special_tokens=False) for label in prompt.labels]
    text = SAMPLE_TEXTS[2]
    (judgement,) = raw_backend.judge(prompt, [text])
    base = _whole_prompt_ids(raw_backend, prompt, text)
    totals = []
    for title in titles:
        logprobs = _full_forward_logprobs(raw_backend, base + title)
        totals.append(sum(float(logprobs[len(base) - 1 + k, token]) for k, token in enumerate(title)))
    expected = torch.softmax(torch.tensor(totals), dim=-1).tolist()
    assert [judgement.scores[value] for value in prompt.label_values] == pytest.approx(expected, abs=1e-4)
    assert judgement.label in prompt.label_values
