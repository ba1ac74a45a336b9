"""From policy versions, drafts and items to what a backend reads (`activelearning.llm`)."""

from __future__ import annotations

from typing import Any

from activelearning.llm.base import LabelChoice, PolicyPrompt
from reviewapp.models import ContentItem

from ..models import PolicyDraft, PolicyVersion, readable_key
from .models import LLMReviewer


def label_choices(schema: dict[str, Any]) -> tuple[LabelChoice, ...]:
    return tuple(
        LabelChoice(
            value=label["value"],
            title=label.get("title") or readable_key(label["value"]),
            description=label.get("description", ""),
        )
        for label in schema["labels"]
    )


def policy_prompt(
    reviewer: LLMReviewer, *, version: PolicyVersion | None = None, draft: PolicyDraft | None = None
) -> PolicyPrompt:
    """The reviewer's prompt under `draft`, else `version`, else the reviewer's own policy version."""
    if draft is not None:
        guideline, schema = draft.guideline, draft.label_schema
    else:
        version = version or reviewer.policy_version
        guideline, schema = version.guideline, version.label_schema
    return PolicyPrompt(
        template=reviewer.prompt_template,
        policy_name=reviewer.policy.name,
        guideline=guideline,
        labels=label_choices(schema),
    )


def item_text(item: ContentItem) -> str:
    """What the model reads of an item: its title and text (media are not read; an item with
    neither is an abstention)."""
    return "\n".join(part for part in (item.title.strip(), item.text.strip()) if part)
