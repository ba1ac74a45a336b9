"""Policy drafts: write the next version of a policy, measure what it would change, publish it.

A draft starts from the version in force (`base_version`) and can be measured before it is
published by an LLM reviewer (`services.draft_evaluation`).

A draft moves draft → in review (`policy_draft_request_review`; an edit sends it back to draft)
→ published. Publishing creates the next `PolicyVersion` (append-only) with its effective time
and a `change_summary` (`services.policy_versions`), makes the draft read-only, records a
`PolicyPublication` and may open RELABEL tasks for gold decided under older versions: a
stratified sample or the gold whose label the draft removes or redefines
(`labeling.services.relabel`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.db.models.functions import Now
from django.utils import timezone

from reviewapp.audit import Actor, audit_record
from reviewapp.models import Queue

from ...models import (
    DraftStatus,
    Policy,
    PolicyDraft,
    PolicyPublication,
    PolicyVersion,
    RelabelMode,
    check_label_schema,
)
from ...services.policy_versions import policy_change_summary, policy_diff
from ...services.relabel import (
    RelabelSelection,
    gold_relabel_candidates,
    relabel_affected,
    relabel_sample,
    relabel_tasks_open,
)

MAX_TITLE_CHARS = 200
MAX_SAMPLE = 5000  # items: a re-review sample, or an LLM evaluation's gold sample
MAX_GUIDELINE_CHARS = 100_000


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
