"""Policy drafts: write the next version of a policy, measure what it would change, publish it.

A draft starts from the version in force (`base_version`) and is evaluated by an LLM reviewer
labelling a gold sample twice, under the base version ("current") and under the draft ("draft"),
in one `LLMRun` of kind "draft" (the run engine lives in `services.runs`). `draft_evaluation`
reads those answers back: the confusion between the two, the items that flip, the expected
change in label distribution and, where the label set stays the same, the accuracy of each
against gold.

A draft moves draft → in review (`policy_draft_request_review`; an edit sends it back to draft)
→ published. Publishing creates the next `PolicyVersion` (append-only) with its effective time
and a `change_summary` (`services.policy_versions`), makes the draft read-only, records a
`PolicyPublication` and may open RELABEL tasks for gold decided under older versions: a
stratified sample or the gold whose label the draft removes or redefines
(`labeling.services.relabel`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.db.models.functions import Now
from django.utils import timezone

from reviewapp.audit import Actor, audit_record
from reviewapp.models import ContentItem, Queue

from ...models import (
    DraftStatus,
    Policy,
    PolicyDraft,
    PolicyPublication,
    PolicyVersion,
    RelabelMode,
    check_label_schema,
    readable_key,
)
from ...services.policy_versions import policy_change_summary, policy_diff
from ...services.relabel import (
    RelabelSelection,
    gold_current_labels,
    gold_relabel_candidates,
    label_key,
    relabel_affected,
    relabel_sample,
    relabel_tasks_open,
)
from ...stats.proportions import wilson_interval
from ..models import LLMJudgement, LLMReviewer, LLMRun, RunKind, RunStatus
from ..prompting import item_text
from .runs import llm_gold_sample_ids, llm_run_start

MAX_TITLE_CHARS = 200
MAX_GUIDELINE_CHARS = 100_000
DRAFT_VARIANTS = ["current", "draft"]
MAX_SAMPLE = 5000
ACTIVE_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


@dataclass(frozen=True)
class LabelChanges:
    """Label values the draft drops and adds relative to its base version."""

    removed: tuple[str, ...]
    added: tuple[str, ...]

    @property
    def possible_rename(self) -> bool:
        return bool(self.removed and self.added)

    @property
    def keeps_label_set(self) -> bool:
        return not (self.removed or self.added)

    def message(self) -> str:
        """Why a lead must confirm these changes; empty when no label disappears."""
        if not self.removed:
            return ""
        gone = ", ".join(repr(value) for value in self.removed)
        if self.possible_rename:
            new = ", ".join(repr(value) for value in self.added)
            return (
                f"label {gone} disappears while {new} appears: if this is a rename, nothing is renamed — "
                f"existing annotations and gold keep {gone}. Confirm each removed label to save the draft."
            )
        return f"label {gone} disappears: existing annotations and gold keep it. Confirm each removed label to save."


def label_changes(*, base: PolicyVersion, schema: dict[str, Any]) -> LabelChanges:
    old = base.label_values
    new = [label["value"] for label in schema["labels"]]
    return LabelChanges(
        removed=tuple(value for value in old if value not in new),
        added=tuple(value for value in new if value not in old),
    )


def check_draft_fields(
    *, base: PolicyVersion, title: str, guideline: str, label_schema: Any, confirm_removed: Collection[str]
) -> LabelChanges:
    """Validate a draft's fields; raise ValidationError with a message per field at fault."""
    errors: dict[str, list[str]] = {}
    if not title.strip():
        errors["title"] = ["Say in a few words what the draft changes."]
    elif len(title) > MAX_TITLE_CHARS:
        errors["title"] = [f"The title is longer than {MAX_TITLE_CHARS} characters."]
    if not guideline.strip():
        errors["guideline"] = ["The guideline must not be empty."]
    elif len(guideline) > MAX_GUIDELINE_CHARS:
        errors["guideline"] = [f"The guideline is longer than {MAX_GUIDELINE_CHARS:,} characters."]
    try:
        check_label_schema(label_schema)
    except ValidationError as error:
        errors["label_schema"] = [f"Label schema: {message}" for message in error.messages]
    if errors:
        raise ValidationError(errors)
    changes = label_changes(base=base, schema=label_schema)
    if set(changes.removed) - set(confirm_removed):
        # Each removed label is confirmed by name: one tick must not wave through a second removal
        # added to the schema after the first was confirmed.
        raise ValidationError({"label_schema": [changes.message()]})
    return changes


def policy_draft_create(
    *,
    policy: Policy,
    title: str,
    guideline: str,
    label_schema: Any,
    actor: Actor,
    confirm_removed: Collection[str] = (),
) -> PolicyDraft:
    """A draft of `policy`'s next version, based on the version in force.

    Raises ValidationError for a policy without a version in force, bad fields, or a label that
    disappears (a possible rename) unless its value is in `confirm_removed`. Audit: `policy_draft.created`.
    """
    base = policy.current_version()
    if base is None:
        raise ValidationError(f"{policy.key} has no version in force to draft from.")
    changes = check_draft_fields(
        base=base,
        title=title,
        guideline=guideline,
        label_schema=label_schema,
        confirm_removed=confirm_removed,
    )
    with transaction.atomic():
        draft = PolicyDraft.objects.create(
            policy=policy,
            base_version=base,
            title=title.strip(),
            guideline=guideline,
            label_schema=label_schema,
            created_by_id=actor.id,
        )
        audit_record(
            actor=actor,
            action="policy_draft.created",
            object_type="policy_draft",
            object_id=draft.pk,
            after={**_audit_state(draft), "removed_labels": changes.removed, "added_labels": changes.added},
        )
    return draft


def policy_draft_update(
    *,
    draft: PolicyDraft,
    title: str,
    guideline: str,
    label_schema: Any,
    actor: Actor,
    confirm_removed: Collection[str] = (),
) -> PolicyDraft:
    """Change an unpublished draft. Locks the draft row; a published draft is read-only
    (ValidationError). A draft in review goes back to "draft": what was asked to be reviewed is
    not what it says now. Audit: `policy_draft.updated` with before and after."""
    with transaction.atomic():
        draft = PolicyDraft.objects.select_for_update().select_related("base_version").get(pk=draft.pk)
        if draft.published_version_id is not None:
            raise ValidationError("This draft was published; it is read-only. Start a new draft.")
        changes = check_draft_fields(
            base=draft.base_version,
            title=title,
            guideline=guideline,
            label_schema=label_schema,
            confirm_removed=confirm_removed,
        )
        before = _audit_state(draft)
        draft.title, draft.guideline, draft.label_schema = title.strip(), guideline, label_schema
        draft.status = DraftStatus.DRAFT
        draft.save(update_fields=["title", "guideline", "label_schema", "status"])
        audit_record(
            actor=actor,
            action="policy_draft.updated",
            object_type="policy_draft",
            object_id=draft.pk,
            before=before,
            after={**_audit_state(draft), "removed_labels": changes.removed, "added_labels": changes.added},
        )
    return draft


def policy_draft_request_review(*, draft: PolicyDraft, actor: Actor) -> PolicyDraft:
    """Mark a draft ready for review ("in review"); only a draft in review can be published.

    Locks the draft row. Idempotent: a draft already in review is returned unchanged (no second
    audit event). Refuses (ValidationError) a published draft. Audit: `policy_draft.review_requested`.
    """
    with transaction.atomic():
        draft = PolicyDraft.objects.select_for_update().get(pk=draft.pk)
        if draft.published_version_id is not None:
            raise ValidationError("This draft was published; it is read-only.")
        if draft.status == DraftStatus.IN_REVIEW:
            return draft
        before = _audit_state(draft)
        draft.status = DraftStatus.IN_REVIEW
        draft.review_requested_by_id = actor.id
        draft.review_requested_at = timezone.now()
        draft.save(update_fields=["status", "review_requested_by", "review_requested_at"])
        audit_record(
            actor=actor,
            action="policy_draft.review_requested",
            object_type="policy_draft",
            object_id=draft.pk,
            before=before,
            after=_audit_state(draft),
        )
    return draft


# A time typed into a form a few seconds ago is "now", not a mistake.
EFFECTIVE_TIME_GRACE = timedelta(minutes=1)


@dataclass(frozen=True)
class RelabelChoice:
    """What to re-review when a version is published: nothing, a stratified sample of
    `sample_size` of the gold decided under older versions (drawn with `seed`), or every such gold
    label whose label the draft removes or redefines; tasks open in `queue`."""

    mode: str = RelabelMode.NONE
    queue: Queue | None = None
    sample_size: int | None = None
    seed: int = 0


def policy_draft_publish(
    *,
    draft: PolicyDraft,
    actor: Actor,
    effective_at: datetime | None = None,
    relabel: RelabelChoice | None = None,
) -> PolicyVersion:
    """Create the policy's next version from a draft in review; the draft becomes read-only.

    `effective_at` (default now) may be in the future — the version is then scheduled and the
    version in force is unchanged until then — but not more than a minute in the past. The version
    gets a `change_summary` (the diff from the base version, in a sentence). `relabel` opens
    RELABEL tasks for gold decided under the base version or older, only for a version in force at
    once (reviewers would otherwise re-review under the old guideline). Records a
    `PolicyPublication`.

    Locks the policy row (version numbers are handed out one at a time), then the draft. Refuses
    (ValidationError) a draft already published (a second publish does nothing), one not in
    review, or one whose base is no longer the newest version (someone published since).
    Audit: `policy_version.published` with the relabel selection (strata, seed, gold ids).
    """
    relabel = relabel or RelabelChoice()
    now = timezone.now()
    in_force_now = effective_at is None or effective_at <= now
    _check_publish_choice(effective_at=effective_at, now=now, relabel=relabel)
    with transaction.atomic():
        Policy.objects.select_for_update().get(pk=draft.policy_id)
        draft = PolicyDraft.objects.select_for_update().select_related("policy", "base_version").get(pk=draft.pk)
        _check_publishable(draft)
        base = draft.base_version
        diff = policy_diff(a=base, b=draft)
        version = PolicyVersion.objects.create(
            policy=draft.policy,
            number=base.number + 1,
            guideline=draft.guideline,
            label_schema=draft.label_schema,
            # The database's clock, the one `Policy.current_version` reads "in force" by.
            effective_at=Now() if in_force_now else effective_at,
            change_summary=policy_change_summary(diff),
            created_by_id=actor.id,
        )
        version.refresh_from_db(fields=["effective_at"])
        selection = _relabel_selection(
            draft=draft, relabel=relabel, redefined=[*diff.removed_values, *diff.redefined_values]
        )
        task_ids = relabel_tasks_open(selection=selection, queue=relabel.queue, actor=actor) if relabel.queue else []
        PolicyPublication.objects.create(
            version=version,
            draft=draft,
            previous_version=base,
            relabel_mode=relabel.mode,
            relabel_sample_size=relabel.sample_size if relabel.mode == RelabelMode.SAMPLE else None,
            relabel_queue=relabel.queue if relabel.mode != RelabelMode.NONE else None,
            relabel_tasks=len(task_ids),
            published_by_id=actor.id,
        )
        draft.published_version = version
        draft.status = DraftStatus.PUBLISHED
        draft.save(update_fields=["published_version", "status"])
        audit_record(
            actor=actor,
            action="policy_version.published",
            object_type="policy",
            object_id=draft.policy_id,
            before={"version": base.number, "labels": base.label_values},
            after={
                "version": version.number,
                "labels": version.label_values,
                "draft": draft.pk,
                "effective_at": version.effective_at.isoformat(),
                "change_summary": version.change_summary,
                "relabel_mode": relabel.mode,
                "relabel_queue": relabel.queue.slug if relabel.queue else None,
                "relabel_tasks": len(task_ids),
                "relabel_selection": selection.record(),
            },
        )
    return version


def _check_publish_choice(*, effective_at: datetime | None, now: datetime, relabel: RelabelChoice) -> None:
    if effective_at is not None and effective_at < now - EFFECTIVE_TIME_GRACE:
        raise ValidationError(
            {"effective_at": ["The effective time is in the past: leave it empty for now, or choose a later time."]}
        )
    if relabel.mode not in RelabelMode.values:
        raise ValidationError({"relabel_mode": [f"Unknown re-review choice {relabel.mode!r}."]})
    if relabel.mode == RelabelMode.NONE:
        if relabel.queue is not None:
            raise ValidationError({"relabel_queue": ["A queue is chosen only when something is re-reviewed."]})
        return
    if effective_at is not None and effective_at > now:
        raise ValidationError(
            {
                "relabel_mode": [
                    "Re-review needs the version in force at once (reviewers label under the version in force): "
                    "publish it effective now, or publish without re-review and queue it once the version is in force."
                ]
            }
        )
    if relabel.queue is None:
        raise ValidationError({"relabel_queue": ["Choose the queue the re-review tasks open in."]})
    if relabel.mode == RelabelMode.SAMPLE and not (relabel.sample_size and 1 <= relabel.sample_size <= MAX_SAMPLE):
        raise ValidationError({"relabel_sample_size": [f"The sample size must be between 1 and {MAX_SAMPLE:,} items."]})


def _check_publishable(draft: PolicyDraft) -> None:
    if draft.published_version_id is not None:
        number = PolicyVersion.objects.only("number").get(pk=draft.published_version_id).number
        raise ValidationError(f"This draft was already published as v{number}; it cannot be published twice.")
    if draft.status != DraftStatus.IN_REVIEW:
        raise ValidationError("Send the draft for review before publishing it.")
    latest = draft.policy.versions.aggregate(n=Max("number"))["n"] or 0
    if latest != draft.base_version.number:
        raise ValidationError(
            f"This draft is based on v{draft.base_version.number} but v{latest} was published since; "
            "start a new draft from the newest version."
        )


def _relabel_selection(*, draft: PolicyDraft, relabel: RelabelChoice, redefined: list[str]) -> RelabelSelection:
    if relabel.mode == RelabelMode.NONE:
        return RelabelSelection(gold_ids=[], population={}, chosen={})
    candidates = gold_relabel_candidates(policy=draft.policy, from_version=draft.base_version)
    if relabel.mode == RelabelMode.SAMPLE:
        return relabel_sample(candidates=candidates, n=relabel.sample_size or 0, seed=relabel.seed)
    if not redefined:
        raise ValidationError(
            {"relabel_mode": ["The draft removes or redefines no label, so no gold label is affected."]}
        )
    return relabel_affected(candidates=candidates, labels=redefined)


def _audit_state(draft: PolicyDraft) -> dict[str, Any]:
    return {
        "policy": draft.policy_id,
        "base_version": draft.base_version_id,
        "title": draft.title,
        "guideline_chars": len(draft.guideline),
        "labels": draft.label_values,
        "status": draft.status,
    }


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
