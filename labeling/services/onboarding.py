"""Onboarding: a set of gold items a reviewer answers before live work in a queue, or to work
again after an automatic pause.

The set is drawn when an attempt starts and fixed for it (`OnboardingAttempt.gold_ids`): current
gold labels of the queue's policies that people decided (consensus, adjudication, appeal — never a
honeypot answer key alone), on items the reviewer never annotated under that policy; items they
were not shown in an earlier attempt come first, oldest gold first. Answers are stored as
`OnboardingAnswer` only: never annotations, gold or agreement input. The reference labels are
shown only once the attempt is finished (`onboarding_review`); passing qualifies the reviewer
(`reviewapp.services.standing.queue_standing_qualify`), failing lets them start another attempt.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef

from reviewapp.audit import Actor, audit_record
from reviewapp.db import db_now
from reviewapp.errors import Conflict
from reviewapp.models import Queue, ReviewTask, RoutingRule
from reviewapp.services.standing import queue_standing_for, queue_standing_qualify

from ..models import Annotation, GoldLabel, GoldSource, OnboardingAnswer, OnboardingAttempt, PolicyVersion

PEOPLE_SOURCES = (GoldSource.CONSENSUS, GoldSource.ADJUDICATION, GoldSource.APPEAL)
# Candidates read to draw a set from (oldest first): enough for any set size the queue allows.
POOL_LIMIT = 2000


class OnboardingRefused(Conflict):
    """No attempt can be started or answered now; the message says why."""


def onboarding_queue_policies(*, queue: Queue) -> list[int]:
    """The policies a queue's work is under: those of its tasks and of the routing rules feeding it."""
    from_tasks = set(ReviewTask.objects.filter(queue=queue).values_list("policy_id", flat=True).distinct())
    from_rules = set(RoutingRule.objects.filter(queue=queue).values_list("policy_id", flat=True))
    return sorted(from_tasks | from_rules)


def onboarding_pool(*, queue: Queue, reviewer: User) -> list[GoldLabel]:
    """Gold labels the reviewer could be asked, in draw order (not yet shown to them first)."""
    annotated = Annotation.objects.filter(
        item_id=OuterRef("item_id"), policy_id=OuterRef("policy_id"), reviewer=reviewer
    )
    candidates = list(
        GoldLabel.objects.filter(
            policy_id__in=onboarding_queue_policies(queue=queue),
            superseded_by__isnull=True,
            source__in=PEOPLE_SOURCES,
        )
        .exclude(Exists(annotated))
        .order_by("pk")[:POOL_LIMIT]
    )
    shown: set[int] = set()
    for gold_ids in OnboardingAttempt.objects.filter(queue=queue, reviewer=reviewer).values_list("gold_ids", flat=True):
        shown.update(gold_ids)
    return sorted(candidates, key=lambda gold: (gold.pk in shown, gold.pk))


def onboarding_open_attempt(*, queue: Queue, reviewer: User) -> OnboardingAttempt | None:
    return OnboardingAttempt.objects.filter(queue=queue, reviewer=reviewer, finished_at__isnull=True).first()


def onboarding_last_finished(*, queue: Queue, reviewer: User) -> OnboardingAttempt | None:
    return (
        OnboardingAttempt.objects.filter(queue=queue, reviewer=reviewer, finished_at__isnull=False)
        .order_by("-finished_at", "-pk")
        .first()
    )


def onboarding_start(*, queue: Queue, reviewer: User) -> OnboardingAttempt:
    """Start an attempt (or return the open one: idempotent). Refused when the reviewer is live
    here already, when a lead paused them (a lead resumes them), or when there is no gold to ask."""
    open_attempt = onboarding_open_attempt(queue=queue, reviewer=reviewer)
    if open_attempt is not None:
        return open_attempt
    standing = queue_standing_for(queue=queue, reviewer=reviewer)
    if standing.live:
        raise OnboardingRefused("You may already work live tasks in this queue.")
    if not standing.may_requalify:
        raise OnboardingRefused(f"A lead paused you in this queue ({standing.reason}); only a lead can resume you.")
    gold_ids = [gold.pk for gold in onboarding_pool(queue=queue, reviewer=reviewer)[: standing.onboarding_size]]
    if not gold_ids:
        raise OnboardingRefused("This queue has no gold items to onboard with yet; ask a policy lead.")
    with transaction.atomic():
        attempt, created = OnboardingAttempt.objects.get_or_create(
            queue=queue,
            reviewer=reviewer,
            finished_at=None,
            defaults={"gold_ids": gold_ids, "pass_mark": queue.onboarding_pass_mark},
        )
        if created:
            audit_record(
                actor=Actor.of(reviewer),
                action="onboarding.started",
                object_type="onboarding_attempt",
                object_id=attempt.pk,
                after={"queue": queue.pk, "gold_ids": gold_ids, "pass_mark": attempt.pass_mark},
            )
    return attempt


@dataclass(frozen=True)
class OnboardingStep:
    """The next item of an open attempt: what the reviewer sees (no reference label)."""

    attempt: OnboardingAttempt
    gold: GoldLabel
    version: PolicyVersion | None
    position: int  # 1-based
    total: int


def onboarding_next(*, attempt: OnboardingAttempt) -> OnboardingStep | None:
    """The first item of the set not answered yet, or None when all are."""
    answered = set(attempt.answers.values_list("gold_id", flat=True))
    for index, gold_id in enumerate(attempt.gold_ids):
        if gold_id not in answered:
            gold = GoldLabel.objects.select_related("item", "policy").get(pk=gold_id)
            return OnboardingStep(attempt, gold, gold.policy.current_version(), index + 1, len(attempt.gold_ids))
    return None


def onboarding_answer(*, attempt_id: int, reviewer: User, gold_id: int, labels: list[str]) -> OnboardingAttempt:
    """Record the reviewer's answer to one item of their open attempt; finish and score the attempt
    after its last item. Idempotent per (attempt, item): a repeated answer changes nothing.

    Locks the attempt row, so answers and the scoring never interleave. Labels are checked against
    the policy's current version (ValidationError).
    """
    with transaction.atomic():
        attempt = OnboardingAttempt.objects.select_for_update().select_related("queue").get(pk=attempt_id)
        if attempt.reviewer_id != reviewer.pk:
            raise OnboardingAttempt.DoesNotExist("No such onboarding attempt.")
        if attempt.finished_at is not None:
            raise OnboardingRefused("This onboarding attempt is finished; start another to try again.")
        if gold_id not in attempt.gold_ids:
            raise OnboardingRefused("That item is not part of your onboarding set.")
        if attempt.answers.filter(gold_id=gold_id).exists():
            return attempt
        gold = GoldLabel.objects.select_related("policy").get(pk=gold_id)
        labels = _checked_labels(labels, gold.policy.current_version())
        OnboardingAnswer.objects.create(
            attempt=attempt, gold=gold, labels=labels, correct=sorted(labels) == sorted(gold.labels)
        )
        audit_record(
            actor=Actor.of(reviewer),
            action="onboarding.answered",
            object_type="onboarding_attempt",
            object_id=attempt.pk,
            after={"gold_id": gold_id, "labels": labels},
        )
        if attempt.answers.count() == len(attempt.gold_ids):
            _finish(attempt, reviewer)
    return attempt


def _checked_labels(labels: list[str], version: PolicyVersion | None) -> list[str]:
    labels = list(dict.fromkeys(label for label in labels if label))
    if not labels:
        raise ValidationError("Choose a label.")
    if version is not None:
        unknown = [label for label in labels if label not in version.label_values]
        if unknown:
            raise ValidationError(f"{', '.join(unknown)} is not a label of {version}.")
        if len(labels) > 1 and not version.label_schema.get("allow_multiple", False):
            raise ValidationError(f"{version} takes one label.")
    return labels


def _finish(attempt: OnboardingAttempt, reviewer: User) -> None:
    """Score the attempt (the caller holds its lock); a pass qualifies the reviewer in the queue."""
    n_correct = attempt.answers.filter(correct=True).count()
    attempt.n_correct = n_correct
    attempt.passed = n_correct / len(attempt.gold_ids) >= attempt.pass_mark
    attempt.finished_at = db_now()
    attempt.save(update_fields=["n_correct", "passed", "finished_at"])
    actor = Actor.of(reviewer)
    audit_record(
        actor=actor,
        action="onboarding.finished",
        object_type="onboarding_attempt",
        object_id=attempt.pk,
        after={
            "queue": attempt.queue_id,
            "n_correct": n_correct,
            "total": len(attempt.gold_ids),
            "passed": attempt.passed,
        },
    )
    if attempt.passed:
        queue_standing_qualify(queue=attempt.queue, reviewer=reviewer, actor=actor)


@dataclass(frozen=True)
class ReviewedAnswer:
    gold: GoldLabel
    version: PolicyVersion | None
    answer: list[str]
    reference: list[str]
    correct: bool


def onboarding_review(*, attempt: OnboardingAttempt) -> list[ReviewedAnswer]:
    """Per item of a finished attempt: the reviewer's answer beside the reference. Refused for an
    attempt still open: the reference labels are shown only after the last answer."""
    if attempt.finished_at is None:
        raise OnboardingRefused("The reference answers are shown once you have answered every item.")
    answers = {a.gold_id: a for a in attempt.answers.select_related("gold__item", "gold__policy")}
    rows = []
    for gold_id in attempt.gold_ids:
        answer = answers[gold_id]
        rows.append(
            ReviewedAnswer(
                answer.gold, answer.gold.policy.current_version(), answer.labels, answer.gold.labels, answer.correct
            )
        )
    return rows
