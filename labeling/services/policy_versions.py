"""What changed between two texts of a policy: guideline diff, label schema diff, a short summary.

Works on anything with a `guideline` and a `label_schema` (a `PolicyVersion` or a `PolicyDraft`),
so the same diff serves "draft against its base", "any version against any other" and the
`change_summary` written at publish. Read-only; no database access beyond the objects given.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..models import readable_key

SUMMARY_MAX_CHARS = 500


class PolicyText(Protocol):
    guideline: str
    label_schema: Any


@dataclass(frozen=True)
class LabelDefinitionChange:
    value: str
    old_title: str
    new_title: str
    old_description: str
    new_description: str

    @property
    def retitled(self) -> bool:
        return self.old_title != self.new_title

    @property
    def redescribed(self) -> bool:
        return self.old_description != self.new_description


@dataclass(frozen=True)
class GuidelineLine:
    kind: str  # "added", "removed", "context" or "gap" (unchanged lines left out)
    text: str


@dataclass
class PolicyDiff:
    """Changes from `a` (older) to `b` (newer). Labels are compared by value: a value that
    disappears while another appears is a removal plus an addition, never a rename."""

    added: list[tuple[str, str]] = field(default_factory=list)  # (value, title)
    removed: list[tuple[str, str]] = field(default_factory=list)
    changed: list[LabelDefinitionChange] = field(default_factory=list)
    order_changed: bool = False
    old_severity: list[str] = field(default_factory=list)
    new_severity: list[str] = field(default_factory=list)
    old_multiple: bool = False
    new_multiple: bool = False
    guideline_lines: list[GuidelineLine] = field(default_factory=list)
    guideline_added: int = 0
    guideline_removed: int = 0

    @property
    def severity_changed(self) -> bool:
        return self.old_severity != self.new_severity

    @property
    def multiple_changed(self) -> bool:
        return self.old_multiple != self.new_multiple

    @property
    def guideline_changed(self) -> bool:
        return bool(self.guideline_added or self.guideline_removed)

    @property
    def schema_changed(self) -> bool:
        return bool(
            self.added
            or self.removed
            or self.changed
            or self.order_changed
            or self.severity_changed
            or self.multiple_changed
        )

    @property
    def empty(self) -> bool:
        return not (self.schema_changed or self.guideline_changed)

    @property
    def removed_values(self) -> list[str]:
        return [value for value, _ in self.removed]

    @property
    def redefined_values(self) -> list[str]:
        """Label values kept by value whose title or description changed."""
        return [change.value for change in self.changed]


def _definitions(schema: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        label["value"]: (label.get("title") or readable_key(label["value"]), label.get("description") or "")
        for label in schema["labels"]
    }


def policy_diff(*, a: PolicyText, b: PolicyText, context_lines: int = 2) -> PolicyDiff:
    """The diff from `a` to `b`: label schema changes and the guideline's changed lines (with
    `context_lines` unchanged lines around each change; longer unchanged runs become a gap)."""
    old, new = _definitions(a.label_schema), _definitions(b.label_schema)
    diff = PolicyDiff(
        added=[(value, new[value][0]) for value in new if value not in old],
        removed=[(value, old[value][0]) for value in old if value not in new],
        changed=[
            LabelDefinitionChange(value, old[value][0], new[value][0], old[value][1], new[value][1])
            for value in new
            if value in old and old[value] != new[value]
        ],
        order_changed=[v for v in old if v in new] != [v for v in new if v in old],
        old_severity=list(a.label_schema.get("severity_levels", [])),
        new_severity=list(b.label_schema.get("severity_levels", [])),
        old_multiple=bool(a.label_schema.get("allow_multiple", False)),
        new_multiple=bool(b.label_schema.get("allow_multiple", False)),
    )
    _guideline_diff(diff, a.guideline.splitlines(), b.guideline.splitlines(), context_lines)
    return diff


def _guideline_diff(diff: PolicyDiff, old: list[str], new: list[str], context_lines: int) -> None:
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for group in matcher.get_grouped_opcodes(context_lines):
        if diff.guideline_lines:
            diff.guideline_lines.append(GuidelineLine("gap", ""))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                diff.guideline_lines.extend(GuidelineLine("context", line) for line in old[i1:i2])
                continue
            diff.guideline_lines.extend(GuidelineLine("removed", line) for line in old[i1:i2])
            diff.guideline_lines.extend(GuidelineLine("added", line) for line in new[j1:j2])
            diff.guideline_removed += i2 - i1
            diff.guideline_added += j2 - j1


def policy_change_summary(diff: PolicyDiff) -> str:
    """One short sentence list of what changed, as reviewers are shown it once ("Policy updated: …")."""
    parts: list[str] = []
    if diff.added:
        parts.append("new label " + ", ".join(title for _, title in diff.added))
    if diff.removed:
        parts.append("label " + ", ".join(title for _, title in diff.removed) + " removed")
    retitled = [change for change in diff.changed if change.retitled]
    if retitled:
        parts.append("renamed " + ", ".join(f"{c.old_title} → {c.new_title}" for c in retitled))
    redescribed = [change.new_title for change in diff.changed if change.redescribed and not change.retitled]
    if redescribed:
        parts.append("definition of " + ", ".join(redescribed) + " changed")
    if diff.order_changed:
        parts.append("labels reordered (number keys changed)")
    if diff.severity_changed:
        parts.append("severity scale now " + (", ".join(diff.new_severity) or "none"))
    if diff.multiple_changed:
        parts.append("several labels per item allowed" if diff.new_multiple else "one label per item only")
    if diff.guideline_changed:
        parts.append(f"guideline text changed (+{diff.guideline_added}/−{diff.guideline_removed} lines)")
    summary = "; ".join(parts) or "no change to the guideline or labels"
    summary = summary[0].upper() + summary[1:] + "."
    return summary if len(summary) <= SUMMARY_MAX_CHARS else summary[: SUMMARY_MAX_CHARS - 1] + "…"
