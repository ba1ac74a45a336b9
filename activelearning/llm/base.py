"""The one interface every LLM backend implements, and what it answers.

A backend receives rendered prompts (`PolicyPrompt` + content) and returns one `Judgement` per
item: a label of the policy's label set with the model's probabilities over that set, or an
abstention with its reason. A backend never guesses: an answer it cannot map onto exactly one
label of the set is an abstention.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class LabelChoice:
    """One label of a policy's schema, as the prompt names it."""

    value: str
    title: str
    description: str = ""


@dataclass(frozen=True)
class PolicyPrompt:
    """Everything of a prompt but the content: template, policy text and label set.

    `prompt_hash` identifies it in caches: two prompts with the same hash render identically for
    the same content.
    """

    template: str
    policy_name: str
    guideline: str
    labels: tuple[LabelChoice, ...]

    @property
    def prompt_hash(self) -> str:
        digest = hashlib.sha256()
        for part in (self.template, self.policy_name, self.guideline):
            digest.update(part.encode())
            digest.update(b"\x00")
        for label in self.labels:
            digest.update(f"{label.value}\x1f{label.title}\x1f{label.description}\x00".encode())
        return digest.hexdigest()

    @property
    def label_values(self) -> tuple[str, ...]:
        return tuple(label.value for label in self.labels)


def content_hash(text: str) -> str:
    """The cache key of a piece of content."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Judgement:
    """A backend's answer for one item.

    `label` is one of the prompt's label values, or None for an abstention (then
    `abstain_reason` says why). `scores` are the model's probabilities over the label set,
    renormalised to sum to 1, where the backend has them (empty otherwise).
    Token counts and latency are what this one call cost; a batched call splits its latency
    evenly between its items.
    """

    label: str | None
    scores: dict[str, float] = field(default_factory=dict)
    abstain_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0

    @property
    def abstained(self) -> bool:
        return self.label is None


class Backend(Protocol):
    """Labels content against a policy prompt."""

    @property
    def model_key(self) -> str:
        """Identifies the model for caches: the same key and prompt give the same answers."""
        ...

    def judge(self, prompt: PolicyPrompt, contents: list[str]) -> list[Judgement]:
        """One judgement per content, in order. Raises BackendUnavailable when the backend could
        not be reached at all (a transient failure the caller may retry later); every other
        failure for an item is that item's abstention."""
        ...


class BackendUnavailable(RuntimeError):
    """The backend could not answer at all (server down, retries exhausted): retry the chunk later."""
