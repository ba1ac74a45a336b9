"""Translation between a policy version's label schema and Label Studio's formats.

Pure functions, no I/O: the labeling config XML, task data, the model's prediction as a
pre-annotation, reading an annotation's result back, and Label Studio JSON for exports.

The generated config names its controls `label` (the policy's labels; choice values are the
schema's label values, shown with their titles), `severity` (when the schema has levels) and
`rationale` (free text); the text is `$text`, the conversation context `$context`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import quoteattr

from labeling.models import PolicyVersion

LABEL, SEVERITY, RATIONALE, TEXT = "label", "severity", "rationale", "text"


class ResultUnreadable(ValueError):
    """A Label Studio annotation result does not fit the generated config."""


def label_config_for(version: PolicyVersion) -> str:
    """The Label Studio labeling config (XML) matching `version`'s label schema."""
    schema = version.label_schema
    choice = "multiple" if schema.get("allow_multiple") else "single-radio"
    lines = [
        "<View>",
        f"  <Header value={quoteattr(f'{version.policy.name} (policy v{version.number})')}/>",
        f'  <Text name="{TEXT}" value="$text"/>',
        '  <Header value="Conversation context" size="6"/>',
        '  <Text name="context" value="$context"/>',
        f'  <Choices name="{LABEL}" toName="{TEXT}" choice="{choice}" required="true" showInline="false">',
    ]
    for label in schema["labels"]:
        title = label.get("title") or label["value"]
        hint = f" hint={quoteattr(label['description'])}" if label.get("description") else ""
        lines.append(f"    <Choice value={quoteattr(title)} alias={quoteattr(label['value'])}{hint}/>")
    lines.append("  </Choices>")
    levels = schema.get("severity_levels") or []
    if levels:
        lines.append('  <Header value="Severity" size="6"/>')
        lines.append(f'  <Choices name="{SEVERITY}" toName="{TEXT}" choice="single-radio" showInline="true">')
        lines.extend(f"    <Choice value={quoteattr(level)}/>" for level in levels)
        lines.append("  </Choices>")
    lines.append(f'  <TextArea name="{RATIONALE}" toName="{TEXT}" maxSubmissions="1" editable="true"')
    lines.append('            placeholder="Why? (optional)"/>')
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def config_digest(label_config: str) -> str:
    """Compare configs ignoring whitespace (Label Studio may reformat what it stores)."""
    return hashlib.sha256("".join(label_config.split()).encode()).hexdigest()


def context_text(context: Any) -> str:
    """Earlier conversation turns as plain text, one `author: text` line each."""
    if not isinstance(context, list):
        return ""
    lines = []
    for turn in context:
        if isinstance(turn, dict):
            author = str(turn.get("author") or "").strip()
            text = str(turn.get("text") or "")
            lines.append(f"{author}: {text}" if author else text)
        else:
            lines.append(str(turn))
    return "\n".join(lines)


def choice_results(labels: Sequence[str], severity: str = "", rationale: str = "") -> list[dict[str, Any]]:
    """A Label Studio `result` list for these labels (the shape of predictions and annotations)."""
    result: list[dict[str, Any]] = [
        {"from_name": LABEL, "to_name": TEXT, "type": "choices", "value": {"choices": list(labels)}}
    ]
    if severity:
        result.append({"from_name": SEVERITY, "to_name": TEXT, "type": "choices", "value": {"choices": [severity]}})
    if rationale:
        result.append({"from_name": RATIONALE, "to_name": TEXT, "type": "textarea", "value": {"text": [rationale]}})
    return result


@dataclass(frozen=True)
class Answer:
    labels: list[str]
    severity: str
    rationale: str


def answer_from_result(result: Any) -> Answer:
    """Read labels, severity and rationale from an annotation's result; the labels themselves
    are validated against the policy version by `annotation_submit`."""
    if not isinstance(result, list):
        raise ResultUnreadable("the annotation result is not a list")
    labels: list[str] = []
    severity, rationale = "", list[str]()
    for region in result:
        if not isinstance(region, dict):
            raise ResultUnreadable("an annotation result entry is not an object")
        name, value = region.get("from_name"), region.get("value") or {}
        if name == LABEL:
            labels.extend(str(choice) for choice in value.get("choices", []))
        elif name == SEVERITY:
            severity = str((value.get("choices") or [""])[0])
        elif name == RATIONALE:
            rationale.extend(str(text) for text in value.get("text", []))
        else:
            raise ResultUnreadable(f"unknown control {name!r}: the project's config does not match the policy")
    if not labels:
        raise ResultUnreadable("no label was chosen")
    return Answer(labels=labels, severity=severity, rationale="\n".join(rationale).strip())


# --------------------------------------------------------------------------- export


@dataclass(frozen=True)
class ExportRow:
    """One labelled item as a dataset snapshot holds it (the export feature fills these)."""

    text: str
    labels: Sequence[str]
    policy_version: PolicyVersion
    context: Any = field(default_factory=list)
    severity: str = ""
    rationale: str = ""
    external_id: str = ""
    ground_truth: bool = True  # gold labels are Label Studio's "ground truth"
    meta: dict[str, Any] = field(default_factory=dict)


def ls_json_tasks(rows: Iterable[ExportRow]) -> list[dict[str, Any]]:
    """Label Studio JSON tasks, each with its label as a completed annotation.

    Import them into a project whose config is `label_config_for(version)` of the rows' policy
    version; rows of several versions belong in several projects (see `meta.policy_version`).
    """
    tasks = []
    for row in rows:
        version = row.policy_version
        tasks.append(
            {
                "data": {"text": row.text, "context": context_text(row.context), "external_id": row.external_id},
                "annotations": [
                    {
                        "result": choice_results(row.labels, row.severity, row.rationale),
                        "ground_truth": row.ground_truth,
                    }
                ],
                "meta": dict(row.meta) | {"policy": version.policy.key, "policy_version": version.number},
            }
        )
    return tasks
