"""The reviewer-visible projection of a task: the one place that decides what a reviewer sees.

The workspace page (`templates/reviewapp/partials/_item.html`) and the reviewer API (`TaskOut` in
`reviewapp/api/tasks.py`) render a `ReviewerTask` and nothing else, so the two cannot drift apart.
Three promises are kept here, and tests/reviewapp/test_projection.py holds them:

- No answer key. Metadata keys that name a reference label, a gold label or other annotators'
  answers (`source_label`, `source_annotations`, `gold`, `annotator_votes`, …) are removed, at any depth.
- A honeypot looks like live work. A honeypot task has no decision of its own, so the item's most
  recent model decision under the policy is shown, with its evidence, as a live task shows its own
  (and `labeling.services.honeypots` serves, on open queues, only items whose look matches the live work).
  The task's reason, priority and the item's database id are never shown: each would tell them apart.
- A blind queue hides the score: no model line, no evidence highlights (they were chosen by the
  model), and no priority (severity × (1 − |2·score − 1|) × reach factor: with the reach on the page
  it gives |2·score − 1| exactly).

An appeal is the exception that proves the first rule: what is under review there is the outcome
the user contests, so an appeal task shows it — the user's statement, the original labels by their
display names, whether a model acted (which one, at what score, unless the queue is blind) or a gold
label stood (and how it was reached), and when the user appealed — but never the reviewers or the
answers behind that outcome. Only tasks opened for an appeal carry this; honeypots are never served
in an appeals queue (`labeling.services.honeypots`), so it tells no honeypot from live work.

Hidden formatting characters (bidi overrides, zero-width joiners) are named per field, for every
field the reviewer sees, so that `invoice \\u202efdp.exe` in a title cannot pass as "invoice exe.pdf".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from labeling.models import Appeal, GoldSource, PolicyVersion

from .content import Media, Segment, hidden_characters, highlight_spans, media_for
from .models import ContentItem, ModelDecision, ReviewTask, RoutingOutcome, TaskReason

# A metadata key is a reference label when one of its words is one of these: the dataset's own
# label, crowd answers, gold, a verdict. Removing a harmless key costs little; showing one of these
# hands the reviewer the answer (and marks a honeypot drawn from labelled data).
REFERENCE_KEY_WORDS = frozenset(
    {
        "label",
        "labels",
        "labeled",
        "labelled",
        "annotation",
        "annotations",
        "annotator",
        "annotators",
        "gold",
        "reference",
        "answer",
        "answers",
        "truth",
        "groundtruth",
        "majority",
        "consensus",
        "adjudication",
        "verdict",
        "vote",
        "votes",
        "rater",
        "raters",
        "judgement",
        "judgment",
        "honeypot",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def is_reference_key(key: str) -> bool:
    """True for a metadata key that names a reference label or other annotators' answers."""
    words = {word.lower() for word in _WORD.findall(str(key))}
    return bool(words & REFERENCE_KEY_WORDS)


def reviewer_metadata(value: Any) -> Any:
    """`value` without reference-label keys, at any depth of nested objects and lists."""
    if isinstance(value, dict):
        return {key: reviewer_metadata(inner) for key, inner in value.items() if not is_reference_key(key)}
    if isinstance(value, list):
        return [reviewer_metadata(inner) for inner in value]
    return value


@dataclass(frozen=True)
class HiddenCharacterWarning:
    field: str  # what the reviewer sees it in, e.g. "title", "conversation turn 1 author"
    characters: list[str]  # names, e.g. ["right-to-left override"]


@dataclass(frozen=True)
class ContextTurn:
    author: str
    text: str


@dataclass(frozen=True)
class ModelLine:
    model_name: str
    model_version: str
    score: float
    predicted_label: str
    evidence_spans: list[dict[str, Any]]


@dataclass(frozen=True)
class ReviewerItem:
    source: str
    external_id: str
    modality: str
    modality_display: str
    title: str
    text: str
    media_urls: list[str]
    context: list[ContextTurn]
    metadata: dict[str, Any]
    reach: int


@dataclass(frozen=True)
class AppealShown:
    """One appeal of the task's item: the contested outcome and the user's words (untrusted)."""

    statement: str
    appealed_at: datetime
    original_labels: list[str]  # display names under the task's policy version
    by_model: bool  # an automatic action; otherwise a gold label stood
    outcome_source: str  # how that gold label was reached, e.g. "Reviewer consensus"; "" for a model
    model_hidden: bool = False  # a model acted, but this blind-review queue hides which and its score
    model_name: str = ""  # empty on a blind queue
    model_version: str = ""
    score: float | None = None  # None on a blind queue


@dataclass(frozen=True)
class ReviewerTask:
    id: int
    queue_id: int
    policy_name: str
    due_at: datetime
    lease_expires_at: datetime | None
    annotation_count: int
    item: ReviewerItem
    policy_version: PolicyVersion | None
    model: ModelLine | None
    hidden_characters: list[HiddenCharacterWarning] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    media: list[Media] = field(default_factory=list)
    appeals: list[AppealShown] = field(default_factory=list)


def task_projection(*, task: ReviewTask, version: PolicyVersion | None, blind: bool | None = None) -> ReviewerTask:
    """What a reviewer may see of `task` (claimed by them), under `version` of its policy.

    `blind` defaults to the task's queue's blind-review setting; only a policy lead's page (an
    adjudication, decided after the reviewers answered) passes False to see the model line.

    Costs no query for a task whose item, queue, policy and decision are loaded (as
    `task_claim_next` returns them); one more for a honeypot, to find its item's latest decision,
    and one more for an appeal task, to read its appeals.
    """
    item = task.item
    shown_item = _reviewer_item(item)
    blind = task.queue.blind_review if blind is None else blind
    model = None if blind else _model_line(task)
    appeals = _appeals_shown(task, version, blind) if task.reason == TaskReason.APPEAL else []
    return ReviewerTask(
        id=task.pk,
        queue_id=task.queue_id,
        policy_name=task.policy.name,
        due_at=task.due_at,
        lease_expires_at=task.lease_expires_at,
        annotation_count=task.annotation_count,
        item=shown_item,
        policy_version=version,
        model=model,
        hidden_characters=_hidden_character_warnings(shown_item, model, appeals),
        segments=highlight_spans(item.text, model.evidence_spans if model else []),
        media=media_for(shown_item.media_urls, item.modality),
        appeals=appeals,
    )


def _reviewer_item(item: ContentItem) -> ReviewerItem:
    metadata = reviewer_metadata(item.metadata if isinstance(item.metadata, dict) else {})
    return ReviewerItem(
        source=item.source,
        external_id=item.external_id,
        modality=item.modality,
        modality_display=item.get_modality_display(),
        title=item.title,
        text=item.text,
        media_urls=list(item.media_urls or []),
        context=[_context_turn(turn) for turn in item.context or []],
        metadata=metadata,
        reach=item.reach,
    )


@dataclass(frozen=True)
class ItemContent:
    """An item's content as the workspace shows it, without a task: what the item page renders
    through the same partial (`policy_name` is its heading)."""

    policy_name: str
    item: ReviewerItem
    hidden_characters: list[HiddenCharacterWarning]
    segments: list[Segment]
    media: list[Media]
    model: None = None


def item_projection(*, item: ContentItem, heading: str = "Content") -> ItemContent:
    """The reviewer-visible content of `item` (reference-label metadata removed, hidden
    characters named), with no model line: the item page lists every decision beside it."""
    shown_item = _reviewer_item(item)
    return ItemContent(
        policy_name=heading,
        item=shown_item,
        hidden_characters=_hidden_character_warnings(shown_item, None, []),
        segments=highlight_spans(item.text, []),
        media=media_for(shown_item.media_urls, item.modality),
    )


def _appeals_shown(task: ReviewTask, version: PolicyVersion | None, blind: bool) -> list[AppealShown]:
    """The appeals this task was opened for, oldest first (later appeals of the same item join it)."""
    shown = []
    for appeal in Appeal.objects.filter(task=task).select_related("decision").order_by("created_at", "pk"):
        by_model = appeal.original_source == "model"
        decision = appeal.decision if by_model and not blind else None
        shown.append(
            AppealShown(
                statement=appeal.statement,
                appealed_at=appeal.created_at,
                original_labels=[version.label_title(v) if version else v for v in appeal.original_labels],
                by_model=by_model,
                outcome_source="" if by_model else _gold_source_display(appeal.original_source),
                model_hidden=by_model and blind,
                model_name=decision.model_name if decision else "",
                model_version=decision.model_version if decision else "",
                score=decision.score if decision else None,
            )
        )
    return shown


# How a contested gold label was reached, as the reviewer may read it. Any other source (a honeypot
# answer key, one unknown here) goes unnamed: naming it would say more than the outcome.
REVIEWER_GOLD_SOURCES = {GoldSource.CONSENSUS, GoldSource.ADJUDICATION, GoldSource.APPEAL}


def _gold_source_display(source: str) -> str:
    return str(GoldSource(source).label) if source in REVIEWER_GOLD_SOURCES else ""


def _context_turn(turn: Any) -> ContextTurn:
    if not isinstance(turn, dict):
        return ContextTurn(author="", text=str(turn))
    return ContextTurn(author=str(turn.get("author") or ""), text=str(turn.get("text") or ""))


def _model_line(task: ReviewTask) -> ModelLine | None:
    decision = task.decision
    if decision is None and task.reason == TaskReason.HONEYPOT:
        decision = item_latest_decision(item_id=task.item_id, policy_id=task.policy_id)
    if decision is None:
        return None
    spans = decision.evidence_spans if isinstance(decision.evidence_spans, list) else []
    return ModelLine(
        model_name=decision.model_name,
        model_version=decision.model_version,
        score=decision.score,
        predicted_label=decision.predicted_label,
        evidence_spans=[span for span in spans if isinstance(span, dict)],
    )


def item_latest_decision(*, item_id: int, policy_id: int) -> ModelDecision | None:
    """The most recent routed model decision on an item under a policy: what a honeypot of it shows
    (a shadow model's decision is never shown)."""
    decisions = ModelDecision.objects.filter(item_id=item_id, policy_id=policy_id).exclude(
        routing_outcome=RoutingOutcome.SHADOW
    )
    return decisions.order_by("-received_at", "-pk").first()


def _hidden_character_warnings(
    item: ReviewerItem, model: ModelLine | None, appeals: list[AppealShown]
) -> list[HiddenCharacterWarning]:
    warnings = []
    for where, text in _shown_texts(item, model, appeals):
        names = hidden_characters(text)
        if names:
            warnings.append(HiddenCharacterWarning(field=where, characters=names))
    return warnings


def _shown_texts(item: ReviewerItem, model: ModelLine | None, appeals: list[AppealShown]) -> Iterator[tuple[str, str]]:
    """Every piece of text the reviewer is shown, with the name of the field it is shown in."""
    yield "source", item.source
    yield "external id", item.external_id
    yield "title", item.title
    yield "text", item.text
    for number, url in enumerate(item.media_urls, start=1):
        yield f"media link {number}", url
    for number, turn in enumerate(item.context, start=1):
        yield f"conversation turn {number} author", turn.author
        yield f"conversation turn {number}", turn.text
    yield from _metadata_texts(item.metadata, "metadata")
    if model is not None:
        yield "model name", f"{model.model_name}@{model.model_version}"
        yield "predicted label", model.predicted_label
        for number, span in enumerate(model.evidence_spans, start=1):
            yield f"evidence {number} label", str(span.get("label", ""))
    for number, appeal in enumerate(appeals, start=1):
        where = "appeal" if len(appeals) == 1 else f"appeal {number}"
        yield f"{where} statement", appeal.statement
        yield f"{where} model name", f"{appeal.model_name}@{appeal.model_version}"


def _metadata_texts(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield f"{where} key", str(key)
            yield from _metadata_texts(inner, f"{where} “{_visible(str(key))}”")
    elif isinstance(value, list):
        for inner in value:
            yield from _metadata_texts(inner, where)
    elif value is not None:
        yield where, str(value)


def _visible(text: str, limit: int = 40) -> str:
    """A key as it can be named in a warning: its hidden characters dropped, cut to `limit`."""
    shown = "".join(char for char in text if not hidden_characters(char))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
