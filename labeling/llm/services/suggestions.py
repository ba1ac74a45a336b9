"""LLM pre-labels in the reviewer workspace, and what they do to the reviewers (automation bias).

A lead turns pre-labels on for a queue (`prelabels_configure`): one LLM reviewer whose live
machine-made annotation of an item is offered as "LLM suggests: X" with one key to accept it.

Eligibility (`suggestion_for`): the queue has pre-labels enabled, is not blind, the task is not a
honeypot, and the LLM reviewer has a live `Annotation(source="llm")` of (item, policy) whose label
is in the schema in force. On the first ask for an eligible (task, reviewer) a random draw with
probability `suggest_fraction` decides whether the suggestion is shown, and is recorded as a
`SuggestionExposure`. The record is the truth: later asks (reloads, retries, an undo) reuse it and
never draw again, which is what makes the with/without comparison a randomised one.

Honeypots and the projection invariant: a reviewer must not be able to tell a honeypot from live
work. A honeypot never shows a suggestion, so it looks exactly like an eligible task whose draw came
out "not shown". That cover only exists while some live tasks are not shown either, hence the
fraction is capped at `MAX_SUGGEST_FRACTION` (0.9). The cover is partial: with honeypot rate h and
fraction f, a task without a suggestion is a honeypot with probability h / (h + (1 - h)(1 - f)),
`honeypot_odds_without_suggestion` times the base rate; the settings page shows that figure so a
lead can choose a lower fraction on queues with many honeypots.

`automation_bias_report` compares the humans' accuracy against the current gold label with and
without a shown suggestion, overall and on the tasks where the suggestion was wrong.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from reviewapp.audit import Actor, audit_record
from reviewapp.models import Queue, QueueKind, ReviewTask, RoutingRule, TaskReason

from ...models import Annotation, AnnotationSource, GoldLabel, Policy
from ...stats.proportions import newcombe_difference_interval, wilson_interval
from ..models import LLMReviewer, QueuePrelabels, SuggestionExposure

MAX_SUGGEST_FRACTION = 0.9


@dataclass(frozen=True)
class Suggestion:
    """What the workspace shows: the LLM's label, its title, and its probability when it gave one."""

    exposure_id: int
    label: str
    title: str
    probability: float | None
    llm_reviewer: str


# ---- configuration ------------------------------------------------------------------------------


def queue_policies(queue: Queue) -> list[Policy]:
    """Policies whose tasks reach `queue`: by a routing rule or by a task already in it."""
    routed = RoutingRule.objects.filter(queue=queue).values("policy_id")
    queued = ReviewTask.objects.filter(queue=queue).values("policy_id")
    return list(Policy.objects.filter(Q(pk__in=routed) | Q(pk__in=queued)).order_by("name"))


def prelabels_refusal(queue: Queue) -> str:
    """Why `queue` can never have pre-labels, or "" when it can."""
    if queue.blind_review:
        return "Blind queue: reviewers see no machine opinion here, so no LLM suggestion either."
    if queue.kind != QueueKind.REVIEW:
        return (
            f"{queue.get_kind_display()} queue: its answers measure or settle earlier decisions and must "
            "stay independent of any machine suggestion."
        )
    return ""


def honeypot_odds_without_suggestion(*, honeypot_rate: float, suggest_fraction: float) -> float:
    """How many times the base honeypot rate a task without a suggestion is a honeypot (1 = no hint)."""
    if honeypot_rate <= 0:
        return 1.0
    hidden = honeypot_rate + (1 - honeypot_rate) * (1 - suggest_fraction)
    return 1 / hidden


def prelabels_configure(
    *,
    queue: Queue,
    reviewer: LLMReviewer | None,
    enabled: bool,
    suggest_fraction: float,
    counts_toward_consensus: bool,
    actor: Actor,
) -> QueuePrelabels | None:
    """Set a queue's pre-labels; `reviewer` None switches them off. Audited; returns the settings.

    Refused (ValidationError) on blind and non-review queues, for an LLM reviewer that is inactive or
    labels a policy the queue does not carry, for suggestions or votes without an LLM reviewer, and
    for a fraction outside [0, MAX_SUGGEST_FRACTION].
    Locks the queue's settings row (when it exists) for the read-modify-write.
    """
    refusal = prelabels_refusal(queue)
    if refusal and (enabled or counts_toward_consensus or reviewer is not None):
        raise ValidationError(refusal)
    _check_fraction(suggest_fraction)
    if reviewer is not None:
        _check_reviewer(queue, reviewer)
    elif enabled or counts_toward_consensus:
        raise ValidationError("Choose the LLM reviewer whose labels are suggested or vote; none switches both off.")
    with transaction.atomic():
        current = QueuePrelabels.objects.select_for_update().filter(queue=queue).first()
        before = _settings_snapshot(current)
        if reviewer is None:
            if current is None:
                return None
            current.enabled, current.counts_toward_consensus = False, False
        elif current is None:
            current = QueuePrelabels(queue=queue, reviewer=reviewer)
        else:
            current.reviewer = reviewer
        if reviewer is not None:
            current.enabled, current.counts_toward_consensus = enabled, counts_toward_consensus
        current.suggest_fraction = suggest_fraction
        current.updated_by_id = actor.id
        current.save()
        audit_record(
            actor=actor,
            action="prelabels.configured",
            object_type="queue",
            object_id=queue.pk,
            before=before,
            after=_settings_snapshot(current),
        )
    return current


def _check_fraction(fraction: Any) -> None:
    if not isinstance(fraction, int | float) or math.isnan(fraction) or not 0 <= fraction <= MAX_SUGGEST_FRACTION:
        raise ValidationError(
            f"The share of tasks that show a suggestion must be between 0 and {MAX_SUGGEST_FRACTION}: "
            "some live tasks must show none, or a task without a suggestion would give a honeypot away."
        )


def _check_reviewer(queue: Queue, reviewer: LLMReviewer) -> None:
    if not reviewer.is_active:
        raise ValidationError(f"The LLM reviewer {reviewer.name} is switched off.")
    if reviewer.policy_id not in {p.pk for p in queue_policies(queue)}:
        raise ValidationError(f"The LLM reviewer {reviewer.name} labels a policy this queue does not carry.")


def _settings_snapshot(prelabels: QueuePrelabels | None) -> dict[str, Any] | None:
    if prelabels is None:
        return None
    return {
        "llm_reviewer_id": prelabels.reviewer_id,
        "enabled": prelabels.enabled,
        "suggest_fraction": prelabels.suggest_fraction,
        "counts_toward_consensus": prelabels.counts_toward_consensus,
    }


# ---- the workspace ------------------------------------------------------------------------------


def queue_prelabels(queue: Queue) -> QueuePrelabels | None:
    """The queue's pre-label settings; free when the queue was loaded with select_related("prelabels")."""
    try:
        return queue.prelabels  # type: ignore[attr-defined,no-any-return]
    except ObjectDoesNotExist:
        return None


def suggestion_for(*, task: ReviewTask, reviewer: User) -> Suggestion | None:
    """The LLM's suggestion for `reviewer` on `task`, or None (not eligible, or drawn "not shown").

    Draws and records the exposure on the first ask for an eligible (task, reviewer); every later ask
    returns what was recorded. Costs nothing more than the settings read on queues without pre-labels.
    """
    queue = task.queue
    if queue.blind_review or task.reason == TaskReason.HONEYPOT or prelabels_refusal(queue):
        return None
    prelabels = queue_prelabels(queue)
    if prelabels is None or not prelabels.enabled:
        return None
    llm = prelabels.reviewer
    annotation = (
        Annotation.objects.filter(
            item_id=task.item_id,
            policy_id=task.policy_id,
            reviewer_id=llm.account_id,
            source=AnnotationSource.LLM,
            retracted_at__isnull=True,
        )
        .select_related("llm_judgement")
        .first()
    )
    titles = _label_titles(task)
    if annotation is None or len(annotation.labels) != 1 or annotation.labels[0] not in titles:
        return None
    exposure = _exposure_drawn(task, reviewer, llm, annotation.labels[0], prelabels.suggest_fraction)
    if not exposure.shown or exposure.suggested_label not in titles:
        return None
    return Suggestion(
        exposure_id=exposure.pk,
        label=exposure.suggested_label,
        title=titles[exposure.suggested_label],
        probability=_probability(annotation, exposure.suggested_label),
        llm_reviewer=llm.name,
    )


def _label_titles(task: ReviewTask) -> dict[str, str]:
    version = task.policy.current_version()
    if version is None:
        return {}
    return {label["value"]: label.get("title") or label["value"] for label in version.label_schema["labels"]}


def _probability(annotation: Annotation, label: str) -> float | None:
    try:
        scores = annotation.llm_judgement.scores  # type: ignore[attr-defined]
    except ObjectDoesNotExist:
        return None
    value = scores.get(label) if isinstance(scores, dict) else None
    return float(value) if isinstance(value, int | float) and 0 <= value <= 1 else None


def _exposure_drawn(
    task: ReviewTask, reviewer: User, llm: LLMReviewer, label: str, fraction: float
) -> SuggestionExposure:
    """The recorded draw for (task, reviewer); the first ask draws it (audited)."""
    existing = SuggestionExposure.objects.filter(task=task, reviewer=reviewer).first()
    if existing is not None:
        return existing
    shown = random.random() < min(fraction, MAX_SUGGEST_FRACTION)  # noqa: S311 - an experiment's draw, not a secret
    try:
        with transaction.atomic():
            exposure = SuggestionExposure.objects.create(
                task=task, reviewer=reviewer, shown=shown, suggested_label=label, llm_reviewer=llm
            )
            audit_record(
                actor=Actor.of(reviewer),
                action="suggestion.drawn",
                object_type="task",
                object_id=task.pk,
                item_id=task.item_id,
                after={"shown": shown, "llm_reviewer_id": llm.pk, "fraction": fraction},
            )
    except IntegrityError:  # a concurrent request drew first: its draw stands
        return SuggestionExposure.objects.get(task=task, reviewer=reviewer)
    return exposure


def suggestion_accepted_record(*, task: ReviewTask, reviewer: User, labels: Iterable[str]) -> bool:
    """The reviewer pressed the accept key and submitted exactly the suggested label: record it.

    Returns whether it was recorded. A shown suggestion the reviewer accepted and then changed is
    not an acceptance. Idempotent (a retried submission records nothing twice).
    """
    with transaction.atomic():
        exposure = (
            SuggestionExposure.objects.select_for_update()
            .filter(task=task, reviewer=reviewer, shown=True, accepted_with_key=False)
            .first()
        )
        if exposure is None or sorted(labels) != [exposure.suggested_label]:
            return False
        exposure.accepted_with_key = True
        exposure.save(update_fields=["accepted_with_key"])
        audit_record(
            actor=Actor.of(reviewer),
            action="suggestion.accepted",
            object_type="task",
            object_id=task.pk,
            item_id=task.item_id,
            before={"accepted_with_key": False},
            after={"accepted_with_key": True, "label": exposure.suggested_label},
        )
    return True


# ---- automation bias ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """k of n, with the Wilson 95 % interval; point None when n is 0."""

    k: int
    n: int
    point: float | None
    low: float
    high: float

    @classmethod
    def of(cls, k: int, n: int) -> Share:
        low, high = wilson_interval(k, n)
        return cls(k, n, k / n if n else None, low, high)


@dataclass(frozen=True)
class Difference:
    """shown − not shown, with Newcombe's hybrid score 95 % interval; None without both groups."""

    point: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, shown: Share, hidden: Share) -> Difference:
        if not shown.n or not hidden.n:
            return cls(None, None, None)
        point, low, high = newcombe_difference_interval(shown.k, shown.n, hidden.k, hidden.n)
        return cls(point, low, high)


@dataclass(frozen=True)
class AutomationBiasReport:
    measured_on: str
    shown: Share  # human accuracy against gold, suggestion shown
    hidden: Share  # ... drawn "not shown"
    difference: Difference
    wrong_shown: Share  # the same, only where the suggestion disagreed with gold
    wrong_hidden: Share
    wrong_difference: Difference
    followed_shown: Share  # the human answered the suggested label
    followed_hidden: Share
    accepted: Share  # shown and answered: accepted with the key
    exposures: int  # draws recorded, answered or not, gold or not


def automation_bias_report(*, policy: Policy | None = None, queue: Queue | None = None) -> AutomationBiasReport:
    """Human accuracy against the current gold label with vs without the LLM's suggestion.

    Measured on the eligible (task, reviewer) draws of the policy or queue whose reviewer answered
    (a live human annotation of that task) and whose item has a current gold label of the task's
    policy. Exposure is randomised per draw, so the difference estimates the suggestion's effect.
    Gold made by the consensus of these very answers (or with the LLM voting, where a queue counts
    it) leans towards agreeing with them in both groups alike; adjudicated gold does not.
    """
    if (policy is None) == (queue is None):
        raise ValueError("automation_bias_report needs a policy or a queue, not both")
    exposures = SuggestionExposure.objects.filter(**({"task__queue": queue} if queue else {"task__policy": policy}))
    fields = ("task_id", "reviewer_id", "shown", "suggested_label", "accepted_with_key")
    rows = list(exposures.values_list(*fields, "task__item_id", "task__policy_id"))
    answers = _human_answers({task_id for task_id, *_ in rows})
    gold = _current_gold({(row[5], row[6]) for row in rows})
    counts: dict[str, list[int]] = {}  # name -> [k, n]

    def tally(name: str, hit: bool) -> None:
        pair = counts.setdefault(name, [0, 0])
        pair[0] += hit
        pair[1] += 1

    for task_id, reviewer_id, shown, suggested, accepted, item_id, policy_id in rows:
        answer = answers.get((task_id, reviewer_id))
        if answer is None:
            continue
        group = "shown" if shown else "hidden"
        tally(f"followed_{group}", answer == [suggested])
        if shown:
            tally("accepted", accepted)
        truth = gold.get((item_id, policy_id))
        if truth is None:
            continue
        tally(group, answer == truth)
        if truth != [suggested]:
            tally(f"wrong_{group}", answer == truth)
    shares = {name: Share.of(*counts.get(name, (0, 0))) for name in _SHARES}
    scope = f"queue {queue.name}" if queue else f"policy {policy.name}"  # type: ignore[union-attr]
    return AutomationBiasReport(
        measured_on=(
            f"Eligible tasks of {scope} with a current gold label, answered by a reviewer; "
            "randomised exposure: each (task, reviewer) drew once whether the suggestion was shown."
        ),
        difference=Difference.of(shares["shown"], shares["hidden"]),
        wrong_difference=Difference.of(shares["wrong_shown"], shares["wrong_hidden"]),
        exposures=len(rows),
        **shares,
    )


_SHARES = ("shown", "hidden", "wrong_shown", "wrong_hidden", "followed_shown", "followed_hidden", "accepted")


def _human_answers(task_ids: set[int]) -> dict[tuple[int, int], list[str]]:
    live = Annotation.objects.filter(task_id__in=task_ids, retracted_at__isnull=True).exclude(
        source=AnnotationSource.LLM
    )
    return {(t, r): sorted(labels) for t, r, labels in live.values_list("task_id", "reviewer_id", "labels")}


def _current_gold(keys: set[tuple[int, int]]) -> dict[tuple[int, int], list[str]]:
    """Current gold labels (highest version) of (item, policy) pairs, labels sorted."""
    if not keys:
        return {}
    rows = (
        GoldLabel.objects.filter(item_id__in={i for i, _ in keys}, policy_id__in={p for _, p in keys})
        .order_by("item_id", "policy_id", "-version")
        .distinct("item_id", "policy_id")
        .values_list("item_id", "policy_id", "labels")
    )
    return {(i, p): sorted(labels) for i, p, labels in rows if (i, p) in keys}
