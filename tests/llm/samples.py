"""Prompts and texts shared by the LLM backend tests."""

from __future__ import annotations

from activelearning.llm.base import LabelChoice, PolicyPrompt
from labeling.llm.models import DEFAULT_TEMPLATE


def two_label_prompt(template: str = DEFAULT_TEMPLATE) -> PolicyPrompt:
    """A small harassment policy with two labels whose titles start with different tokens."""
    return PolicyPrompt(
        template=template,
        policy_name="Harassment",
        guideline="Insults, threats or degrading remarks aimed at a person are violating.",
        labels=(LabelChoice("violating", "Violating"), LabelChoice("not_violating", "Not violating")),
    )


SAMPLE_TEXTS = [
    "You are an idiot and I will find you.",
    "Lovely weather today, see you at the park.",
    "Shut up, nobody likes you, loser.",
    "The meeting moved to 3pm on Thursday.",
    "Thanks for fixing the bug so quickly!",
]
