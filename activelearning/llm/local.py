"""The offline backend: Gemma 3 270M on CPU torch, label choice by next-token probabilities.

A small *base* model does not follow instructions reliably, and free text from it cannot be
trusted to name a label, so nothing is generated: after the rendered prompt (which ends with
"Label:"), the model's next-token distribution is read at the first token of each label's title,
and the label set's probabilities are renormalised to sum to 1. Titles whose first tokens
coincide are told apart by the log-probability of the whole title instead (one extra forward per
label). The answer is the most probable label, so this backend abstains only when there is
nothing to read (no text content).

A base model prefers some label words whatever the content. Contextual calibration (Zhao et
al., ICML 2021) removes that: the label probabilities for content-free inputs are measured once per
prompt, and each item's probabilities are divided by them before renormalising. `scores` are the
calibrated probabilities; the uncalibrated ones are kept in the judgement's `raw_scores`.

The prompt's shared prefix (template, policy and labels) is run once per prompt and its key/value
cache reused for every item, so an item costs only its own tokens.
"""

from __future__ import annotations

import copy
import math
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from .base import Judgement, PolicyPrompt
from .prompts import render, split_at_content
from .weights import MODEL_ID, converted_dir

MAX_CONTENT_TOKENS = 512
CONTENT_FREE_INPUTS = ("N/A", "[content removed]", "...")


class LocalBackend:
    """Gemma 3 270M, loaded once per process from the converted copy under `cache_dir`."""

    def __init__(
        self, cache_dir: Path, *, batch_size: int = 8, threads: int | None = None, calibrate: bool = True
    ) -> None:
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self.threads = threads
        self.calibrate = calibrate
        self._prefix_cache: dict[str, tuple[Any, int]] = {}
        self._calibration: dict[str, Any] = {}

    @property
    def model_key(self) -> str:
        return f"local:{MODEL_ID}" + (":calibrated" if self.calibrate else "")

    @cached_property
    def _loaded(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        directory = converted_dir(self.cache_dir)
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
        model = AutoModelForCausalLM.from_pretrained(str(directory), dtype=torch.float32)
        model.eval()
        return tokenizer, model

    def tokenizer_and_model(self) -> tuple[Any, Any]:
        """The loaded tokenizer and model (loaded on first use): the protocol server generates with them."""
        return self._loaded

    def with_calibration(self, calibrate: bool) -> LocalBackend:
        """Another backend on the same loaded weights, with or without contextual calibration."""
        other = LocalBackend(self.cache_dir, batch_size=self.batch_size, threads=self.threads, calibrate=calibrate)
        other.__dict__["_loaded"] = self._loaded  # the cached_property's slot: no second copy of the model
        return other

    def load(self) -> None:
        """Load (and on first use convert) the model now rather than on the first judgement."""
        self._loaded  # noqa: B018

    def judge(self, prompt: PolicyPrompt, contents: list[str]) -> list[Judgement]:
        results: list[Judgement | None] = [None] * len(contents)
        readable = [i for i, text in enumerate(contents) if text.strip()]
        for i in set(range(len(contents))) - set(readable):
            results[i] = Judgement(label=None, abstain_reason="No text to read.")
        for start in range(0, len(readable), self.batch_size):
            batch = readable[start : start + self.batch_size]
            for i, judgement in zip(batch, self._judge_batch(prompt, [contents[i] for i in batch]), strict=True):
                results[i] = judgement
        return [r for r in results if r is not None]

    def label_first_tokens(self, prompt: PolicyPrompt) -> list[int] | None:
        """The first token of " <title>" for each label, or None when two labels share it."""
        tokenizer, _ = self._loaded
        firsts = [tokenizer.encode(" " + label.title, add_special_tokens=False)[0] for label in prompt.labels]
        return firsts if len(set(firsts)) == len(firsts) else None

    def _judge_batch(self, prompt: PolicyPrompt, contents: list[str]) -> list[Judgement]:
        import torch

        started = time.perf_counter()
        firsts = self.label_first_tokens(prompt)
        with torch.inference_mode():
            if firsts is not None:
                logprobs, n_tokens = self._next_token_logprobs(prompt, contents)
                label_logprobs = logprobs[:, firsts]
            else:
                label_logprobs, n_tokens = self._title_logprobs(prompt, contents)
        raw = torch.softmax(label_logprobs, dim=-1)
        probabilities = raw
        if self.calibrate:
            calibrated = raw / self._content_free(prompt)
            probabilities = calibrated / calibrated.sum(dim=-1, keepdim=True)
        probabilities = probabilities.tolist()
        latency = (time.perf_counter() - started) * 1000 / len(contents)
        values = prompt.label_values
        judgements = []
        for row, tokens in zip(probabilities, n_tokens, strict=True):
            scores = {value: float(p) for value, p in zip(values, row, strict=True)}
            best = max(values, key=lambda v: scores[v])
            if not all(math.isfinite(p) for p in row):
                judgements.append(Judgement(label=None, abstain_reason="The model gave no usable scores."))
                continue
            judgements.append(Judgement(label=best, scores=scores, prompt_tokens=tokens, latency_ms=latency))
        return judgements

    def _content_free(self, prompt: PolicyPrompt) -> Any:
        """Mean label probabilities over content-free inputs: the model's bias for this prompt."""
        import torch

        key = prompt.prompt_hash
        if key not in self._calibration:
            firsts = self.label_first_tokens(prompt)
            with torch.inference_mode():
                if firsts is not None:
                    logprobs, _ = self._next_token_logprobs(prompt, list(CONTENT_FREE_INPUTS))
                    label_logprobs = logprobs[:, firsts]
                else:
                    label_logprobs, _ = self._title_logprobs(prompt, list(CONTENT_FREE_INPUTS))
            self._calibration = {key: torch.softmax(label_logprobs, dim=-1).mean(dim=0).clamp_min(1e-6)}
        return self._calibration[key]

    def _content_ids(self, prompt: PolicyPrompt, contents: list[str]) -> list[list[int]]:
        tokenizer, _ = self._loaded
        _, after = split_at_content(prompt)
        rendered = []
        for text in contents:
            body = render(prompt, text)
            before, _ = split_at_content(prompt)
            middle = body[len(before) : len(body) - len(after)]
            ids = tokenizer.encode(middle, add_special_tokens=False)[:MAX_CONTENT_TOKENS]
            rendered.append(ids + tokenizer.encode(after, add_special_tokens=False))
        return rendered

    def _prefix(self, prompt: PolicyPrompt) -> tuple[Any, int]:
        """The key/value cache of the prompt's shared prefix, computed once per prompt."""
        import torch

        key = prompt.prompt_hash
        if key not in self._prefix_cache:
            tokenizer, model = self._loaded
            before, _ = split_at_content(prompt)
            ids = tokenizer.encode(before, add_special_tokens=True)
            output = model(torch.tensor([ids]), use_cache=True)
            self._prefix_cache = {key: (output.cache, len(ids))}  # one prompt at a time
        return self._prefix_cache[key]

    def _forward(self, prompt: PolicyPrompt, sequences: list[list[int]]) -> Any:
        """Logits of right-padded `sequences` continuing the prompt prefix: (batch, length, vocab)."""
        import torch

        _, model = self._loaded
        prefix, prefix_len = self._prefix(prompt)
        width = max(len(s) for s in sequences)
        ids = torch.zeros((len(sequences), width), dtype=torch.long)
        mask = torch.zeros((len(sequences), prefix_len + width), dtype=torch.long)
        mask[:, :prefix_len] = 1
        for row, sequence in enumerate(sequences):
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, prefix_len : prefix_len + len(sequence)] = 1
        cache = copy.deepcopy(prefix)
        cache.batch_repeat_interleave(len(sequences))
        positions = torch.arange(prefix_len, prefix_len + width).unsqueeze(0).expand(len(sequences), -1)
        output = model(input_ids=ids, attention_mask=mask, cache=cache, position_ids=positions, use_cache=True)
        return output.logits, prefix_len

    def _next_token_logprobs(self, prompt: PolicyPrompt, contents: list[str]) -> tuple[Any, list[int]]:
        import torch

        sequences = self._content_ids(prompt, contents)
        logits, prefix_len = self._forward(prompt, sequences)
        last = torch.tensor([len(s) - 1 for s in sequences])
        rows = logits[torch.arange(len(sequences)), last]
        return torch.log_softmax(rows.float(), dim=-1), [prefix_len + len(s) for s in sequences]

    def _title_logprobs(self, prompt: PolicyPrompt, contents: list[str]) -> tuple[Any, list[int]]:
        """Sum of log-probabilities of each label's whole title after each content."""
        import torch

        tokenizer, _ = self._loaded
        titles = [tokenizer.encode(" " + label.title, add_special_tokens=False) for label in prompt.labels]
        bases = self._content_ids(prompt, contents)
        sequences = [base + title for base in bases for title in titles]
        logits, prefix_len = self._forward(prompt, sequences)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        totals = torch.zeros((len(contents), len(titles)))
        for n, (base, title) in enumerate((b, t) for b in bases for t in titles):
            for k, token in enumerate(title):
                totals[n // len(titles), n % len(titles)] += logprobs[n, len(base) - 1 + k, token]
        return totals, [prefix_len + len(b) for b in bases]
