"""Prompt rendering: the policy, its labels and the untrusted content in a delimited block.

Content is hostile by assumption. It goes between fixed markers, after the policy and the label
list, and the template tells the model to ignore instructions inside it; a marker inside the
content is neutralised so content cannot close its own block. The answer is constrained to the
label set by the backends (scores over label words, or a schema-validated JSON answer), never
parsed from free text.
"""

from __future__ import annotations

from .base import LabelChoice, PolicyPrompt

OPEN_MARKER = "<<<CONTENT"
CLOSE_MARKER = "CONTENT>>>"
REQUIRED_FIELDS = ("{content}", "{labels}")


class TemplateError(ValueError):
    """A prompt template that cannot be rendered safely."""


def check_template(template: str) -> None:
    """Raise TemplateError unless the template has the fields every prompt needs and no others."""
    for required in REQUIRED_FIELDS:
        if required not in template:
            raise TemplateError(f"The template must contain {required}.")
    try:
        template.format(policy_name="", guideline="", labels="", content="")
    except (KeyError, IndexError, ValueError) as error:
        raise TemplateError(
            f"The template has a field it cannot fill ({error}); use only {{policy_name}}, {{guideline}}, "
            "{labels} and {content}, and double braces {{ }} for literal ones."
        ) from None


def labels_block(labels: tuple[LabelChoice, ...]) -> str:
    lines = []
    for label in labels:
        line = f"- {label.title}"
        if label.description:
            line += f": {label.description}"
        lines.append(line)
    return "\n".join(lines)


def neutralise(content: str) -> str:
    """The content with the block markers defused, so it cannot end its block early."""
    return content.replace(CLOSE_MARKER, "CONTENT> >>").replace(OPEN_MARKER, "< <<CONTENT")


def render(prompt: PolicyPrompt, content: str) -> str:
    return prompt.template.format(
        policy_name=prompt.policy_name,
        guideline=prompt.guideline.strip(),
        labels=labels_block(prompt.labels),
        content=neutralise(content),
    )


def split_at_content(prompt: PolicyPrompt) -> tuple[str, str]:
    """(text before the content, text after it): the prefix is the same for every item."""
    marker = "\x00CONTENT\x00"
    whole = prompt.template.format(
        policy_name=prompt.policy_name,
        guideline=prompt.guideline.strip(),
        labels=labels_block(prompt.labels),
        content=marker,
    )
    before, _, after = whole.partition(marker)
    return before, after
