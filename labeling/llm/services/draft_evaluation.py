"""Measuring a policy draft before it is published: an LLM reviewer labels a gold sample twice.

Under the base version ("current") and under the draft ("draft"), in one `LLMRun` of kind
"draft" (the run engine lives in `services.runs`). `draft_evaluation` reads those answers back:
the confusion between the two, the items that flip, the expected change in label distribution
and, where the label set stays the same, the accuracy of each against gold.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from reviewapp.audit import Actor
from reviewapp.models import ContentItem

from ...models import Policy, PolicyDraft, readable_key
from ...services.relabel import gold_current_labels, label_key
from ...stats.proportions import wilson_interval
from ..models import LLMJudgement, LLMReviewer, LLMRun, RunKind, RunStatus
from ..prompting import item_text
from .drafts import MAX_SAMPLE, label_changes
from .runs import llm_gold_sample_ids, llm_run_start

DRAFT_VARIANTS = ["current", "draft"]
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


def draft_evaluation_start(
    *, draft: PolicyDraft, reviewer: LLMReviewer, n: int, actor: User | Actor, seed: int = 0
) -> LLMRun:
    """Start an LLM run that labels `n` gold items of the draft's policy under the base version
    and under the draft. `actor` is passed to `llm_run_start` as is (a user is recorded as the
    run's starter). Raises ValidationError for a published draft, one with an evaluation still
    running, a reviewer of another policy or switched off, or a policy without gold."""
    if reviewer.policy_id != draft.policy_id:
        raise ValidationError(f"{reviewer.name} reviews another policy.")
    if not reviewer.is_active:
        raise ValidationError(f"{reviewer.name} is switched off.")
    if not 1 <= n <= MAX_SAMPLE:
        raise ValidationError(f"The sample size must be between 1 and {MAX_SAMPLE:,} items.")
    item_ids = llm_gold_sample_ids(policy=draft.policy, n=n, seed=seed)
    if not item_ids:
        raise ValidationError(f"{draft.policy.name} has no gold items to evaluate on.")
    with transaction.atomic():
        # The draft's row lock makes a double click start one run, not two.
        draft = PolicyDraft.objects.select_for_update().get(pk=draft.pk)
        if draft.published_version_id is not None:
            raise ValidationError("This draft was published; evaluate a new draft instead.")
        if draft.runs.filter(kind=RunKind.DRAFT, status__in=ACTIVE_STATUSES).exists():
            raise ValidationError("An evaluation of this draft is still running.")
        return llm_run_start(
            reviewer=reviewer, kind=RunKind.DRAFT, item_ids=item_ids, variants=DRAFT_VARIANTS, draft=draft, actor=actor
        )


# --- Reading an evaluation back ---------------------------------------------------------------

FLIP_EXCERPT_CHARS = 300


@dataclass(frozen=True)
class Share:
    """A label's share of the answered items, with its 95 % Wilson interval."""

    count: int
    n: int

    @property
    def share(self) -> float:
        return self.count / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.count, self.n)


@dataclass(frozen=True)
class LabelShift:
    label: str
    title: str
    current: Share
    draft: Share

    @property
    def difference(self) -> float:
        """Draft share minus current share (both on the same paired items)."""
        return self.draft.share - self.current.share


@dataclass(frozen=True)
class Flip:
    item_id: int
    current: str
    draft: str
    excerpt: str
    gold: str | None
    current_title: str = ""
    draft_title: str = ""


@dataclass
class DraftEvaluation:
    """What a draft run measured; every figure is over the `n` items answered under both prompts.

    `confusion[(current, draft)]` counts items; rows are the base version's labels, columns the
    draft's (each schema's order, then any other answer seen). Accuracy against gold is given only
    when the draft keeps the base version's label set (otherwise the two answer different questions).
    """

    run: LLMRun
    draft: PolicyDraft
    planned: int  # items in the run
    answered: int  # items with both judgements stored (abstained or not)
    n: int  # items answered under both prompts without abstaining
    abstained_current: int
    abstained_draft: int
    rows: list[str]
    columns: list[str]
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    flips: list[Flip] = field(default_factory=list)
    shifts: list[LabelShift] = field(default_factory=list)
    keeps_label_set: bool = True
    gold_n: int = 0
    gold_correct_current: int = 0
    gold_correct_draft: int = 0
    base_titles: dict[str, str] = field(default_factory=dict)  # label value → title under the base version
    draft_titles: dict[str, str] = field(default_factory=dict)  # … under the draft

    @property
    def flipped(self) -> int:
        return len(self.flips)

    @property
    def accuracy_current(self) -> Share:
        return Share(self.gold_correct_current, self.gold_n)

    @property
    def accuracy_draft(self) -> Share:
        return Share(self.gold_correct_draft, self.gold_n)

    def matrix(self) -> list[tuple[str, str, list[int]]]:
        """Rows of the confusion table: (current label, its title, counts per draft label in `columns` order)."""
        return [
            (row, self.base_titles.get(row, row), [self.confusion[(row, column)] for column in self.columns])
            for row in self.rows
        ]

    @property
    def column_heads(self) -> list[tuple[str, str]]:
        return [(column, self.draft_titles.get(column, column)) for column in self.columns]


def draft_evaluation(*, run: LLMRun) -> DraftEvaluation:
    """Read a draft run's judgements back into the comparison the draft page shows.

    Works on a run in progress too (over the items answered so far). Raises ValidationError for a
    run that is not a draft evaluation.
    """
    if run.kind != RunKind.DRAFT or run.draft_id is None or set(run.variants) != set(DRAFT_VARIANTS):
        raise ValidationError(f"run {run.pk} is not a policy-draft evaluation")
    draft = PolicyDraft.objects.select_related("policy", "base_version").get(pk=run.draft_id)
    answers: dict[int, dict[str, str]] = {}
    for item_id, variant, label in LLMJudgement.objects.filter(run=run, variant__in=DRAFT_VARIANTS).values_list(
        "item_id", "variant", "label"
    ):
        answers.setdefault(item_id, {})[variant] = label
    paired = {item: pair for item, pair in answers.items() if len(pair) == 2}
    both = {item: (pair["current"], pair["draft"]) for item, pair in paired.items() if all(pair.values())}
    confusion = Counter(both.values())
    changes = label_changes(base=draft.base_version, schema=draft.label_schema)
    evaluation = DraftEvaluation(
        run=run,
        draft=draft,
        planned=len(run.item_ids),
        answered=len(paired),
        n=len(both),
        abstained_current=sum(1 for pair in paired.values() if not pair["current"]),
        abstained_draft=sum(1 for pair in paired.values() if not pair["draft"]),
        rows=_ordered(draft.base_version.label_values, (current for current, _ in both.values())),
        columns=_ordered(draft.label_values, (new for _, new in both.values())),
        confusion=confusion,
        keeps_label_set=changes.keeps_label_set,
        base_titles=_titles(draft.base_version.label_schema),
        draft_titles=_titles(draft.label_schema),
    )
    gold = _gold_keys(draft.policy, list(both))
    evaluation.flips = _flips(both, gold, evaluation)
    evaluation.shifts = _shifts(evaluation, both)
    if changes.keeps_label_set:
        graded = [(pair, gold[item]) for item, pair in both.items() if item in gold]
        evaluation.gold_n = len(graded)
        evaluation.gold_correct_current = sum(1 for (current, _), truth in graded if current == truth)
        evaluation.gold_correct_draft = sum(1 for (_, new), truth in graded if new == truth)
    return evaluation


def _ordered(schema_order: list[str], seen: Any) -> list[str]:
    extra = sorted(set(seen) - set(schema_order))
    return [*schema_order, *extra]


def _gold_keys(policy: Policy, item_ids: list[int]) -> dict[int, str]:
    """item id → its current gold label of `policy` as one category (see `label_key`)."""
    golds = gold_current_labels(policy=policy).filter(item_id__in=item_ids).values_list("item_id", "labels")
    return {item_id: label_key(labels) for item_id, labels in golds}


def _titles(schema: dict[str, Any]) -> dict[str, str]:
    return {label["value"]: label.get("title") or readable_key(label["value"]) for label in schema["labels"]}


def _flips(both: dict[int, tuple[str, str]], gold: dict[int, str], evaluation: DraftEvaluation) -> list[Flip]:
    flipped = sorted(item for item, (current, new) in both.items() if current != new)
    items = ContentItem.objects.only("title", "text").in_bulk(flipped)
    return [
        Flip(
            item_id=item_id,
            current=both[item_id][0],
            draft=both[item_id][1],
            excerpt=_excerpt(items[item_id]),
            gold=gold.get(item_id),
            current_title=evaluation.base_titles.get(both[item_id][0], both[item_id][0]),
            draft_title=evaluation.draft_titles.get(both[item_id][1], both[item_id][1]),
        )
        for item_id in flipped
    ]


def _excerpt(item: ContentItem) -> str:
    text = item_text(item)
    return text if len(text) <= FLIP_EXCERPT_CHARS else text[: FLIP_EXCERPT_CHARS - 1] + "…"


def _shifts(evaluation: DraftEvaluation, both: dict[int, tuple[str, str]]) -> list[LabelShift]:
    n = len(both)
    current = Counter(label for label, _ in both.values())
    draft = Counter(label for _, label in both.values())
    labels = [*evaluation.rows, *(label for label in evaluation.columns if label not in evaluation.rows)]
    titles = {**evaluation.base_titles, **evaluation.draft_titles}
    return [
        LabelShift(label, titles.get(label, label), Share(current[label], n), Share(draft[label], n))
        for label in labels
    ]


def draft_runs(*, draft: PolicyDraft) -> list[LLMRun]:
    """The draft's evaluation runs, newest first."""
    return list(draft.runs.filter(kind=RunKind.DRAFT).select_related("reviewer").order_by("-created_at", "-pk"))
