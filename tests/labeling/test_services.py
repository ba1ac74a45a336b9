"""Submitting and undoing annotations: idempotency, late answers, rejections kept, undo window."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from labeling.models import Annotation
from labeling.services.annotations import SubmissionRejected, annotation_retract, annotation_submit
from reviewapp.models import AuditEvent, ReviewTask, TaskStatus
from reviewapp.services.claims import task_claim_next
from tests.factories import ReviewTaskFactory, UserFactory


@pytest.fixture
def reviewer(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="rev1")


@pytest.fixture
def claimed(policy, queue, reviewer):  # type: ignore[no-untyped-def]
    ReviewTaskFactory(policy=policy, queue=queue)
    return task_claim_next(reviewer=reviewer, queue=queue).task


def submit(task, reviewer, **kwargs):  # type: ignore[no-untyped-def]
    values = {"submission_id": uuid.uuid4(), "labels": ["violating"]}
    values.update(kwargs)
    return annotation_submit(task_id=task.pk, reviewer=reviewer, **values)


def expire(task: ReviewTask) -> None:
    ReviewTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))


def test_submit_records_annotation_and_completes_task(claimed, reviewer) -> None:
    result = submit(claimed, reviewer, severity="high", rationale="direct insult", handle_time_ms=4200)
    claimed.refresh_from_db()
    assert result.created and result.task_completed
    assert (claimed.status, claimed.annotation_count, claimed.leased_by) == (TaskStatus.COMPLETED, 1, None)
    annotation = result.annotation
    assert (annotation.labels, annotation.severity, annotation.late) == (["violating"], "high", False)
    assert annotation.policy_version == claimed.policy.current_version()
    assert 0 <= annotation.handle_time_ms <= 4200
    assert AuditEvent.objects.filter(action="annotation.submitted").count() == 1


def test_same_submission_id_twice_creates_one_annotation(claimed, reviewer) -> None:
    submission = uuid.uuid4()
    first = submit(claimed, reviewer, submission_id=submission)
    second = submit(claimed, reviewer, submission_id=submission)
    assert first.created and not second.created
    assert second.annotation.pk == first.annotation.pk
    assert Annotation.objects.count() == 1


def test_submission_id_of_another_reviewer_is_refused(claimed, reviewer) -> None:
    submission = uuid.uuid4()
    submit(claimed, reviewer, submission_id=submission)
    with pytest.raises(SubmissionRejected, match="another reviewer"):
        submit(claimed, UserFactory(), submission_id=submission)


def test_late_submission_is_accepted_when_nobody_else_holds_the_task(claimed, reviewer) -> None:
    expire(claimed)
    result = submit(claimed, reviewer)
    assert result.created and result.annotation.late


def test_late_submission_is_rejected_when_another_reviewer_claimed_it(claimed, reviewer, queue) -> None:
    expire(claimed)
    task_claim_next(reviewer=UserFactory(username="rev2"), queue=queue)
    with pytest.raises(SubmissionRejected, match="another reviewer now has this item"):
        submit(claimed, reviewer, labels=["not_violating"], rationale="satire")
    kept = AuditEvent.objects.get(action="annotation.rejected")
    assert kept.after["labels"] == ["not_violating"] and kept.after["rationale"] == "satire"
    assert kept.actor_label == "rev1"
    assert not Annotation.objects.exists()


def test_submission_to_a_completed_task_is_kept_in_audit(claimed, reviewer) -> None:
    ReviewTask.objects.filter(pk=claimed.pk).update(status=TaskStatus.COMPLETED, leased_by=None, lease_expires_at=None)
    with pytest.raises(SubmissionRejected, match="already completed"):
        submit(claimed, reviewer)
    assert AuditEvent.objects.filter(action="annotation.rejected").exists()


@pytest.mark.parametrize(
    ("labels", "severity", "message"),
    [
        ([], "", "Choose a label"),
        (["spam"], "", "Unknown label 'spam'"),
        (["violating", "not_violating"], "", "exactly one label"),
        (["violating"], "extreme", "Unknown severity"),
    ],
)
def test_labels_are_checked_against_the_policy_version(claimed, reviewer, labels, severity, message) -> None:
    with pytest.raises(ValidationError, match=message):
        submit(claimed, reviewer, labels=labels, severity=severity)
    assert not Annotation.objects.exists()


def test_undo_reopens_task_and_leases_it_back(claimed, reviewer) -> None:
    result = submit(claimed, reviewer)
    task = annotation_retract(annotation_id=result.annotation.pk, reviewer=reviewer)
    assert (task.status, task.annotation_count, task.leased_by) == (TaskStatus.OPEN, 0, reviewer)
    result.annotation.refresh_from_db()
    assert result.annotation.retracted_at is not None
    assert submit(task, reviewer, labels=["not_violating"]).created  # may label it again


@override_settings(UNDO_WINDOW_SECONDS=1)
def test_undo_after_window_is_refused(claimed, reviewer) -> None:
    result = submit(claimed, reviewer)
    # Shift the submission back on the database clock instead of sleeping past the window.
    Annotation.objects.filter(pk=result.annotation.pk).update(created_at=F("created_at") - timedelta(seconds=1.05))
    with pytest.raises(SubmissionRejected, match="1 seconds"):
        annotation_retract(annotation_id=result.annotation.pk, reviewer=reviewer)


def test_only_own_answers_can_be_undone(claimed, reviewer) -> None:
    result = submit(claimed, reviewer)
    with pytest.raises(SubmissionRejected, match="your own"):
        annotation_retract(annotation_id=result.annotation.pk, reviewer=UserFactory())


def test_handle_time_is_capped_by_time_since_claim(claimed, reviewer) -> None:
    result = submit(claimed, reviewer, handle_time_ms=10 * 3600 * 1000)
    assert result.annotation.handle_time_ms < 60_000


def _wait_until_blocked_on_lock(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # activity is cached per transaction
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the submission never waited for the claim's row lock")


@pytest.mark.slow
def test_race_submit_after_expiry_loses_to_a_claim_in_flight(transactional_db, policy, queue) -> None:
    """Deterministic: B's claim holds the task row lock when A's late submission arrives; A must wait
    for B to commit, then see B's lease and be rejected (and audited), never both annotating."""
    rev_a, rev_b = UserFactory(username="a"), UserFactory(username="b")
    task = ReviewTaskFactory(policy=policy, queue=queue)
    task_claim_next(reviewer=rev_a, queue=queue)
    expire(task)
    outcome: dict[str, object] = {}

    def late_submit() -> None:
        try:
            submit(task, rev_a)
            outcome["a"] = "accepted"
        except SubmissionRejected as error:
            outcome["a"] = str(error)
        finally:
            connection.close()

    with transaction.atomic():
        assert task_claim_next(reviewer=rev_b, queue=queue).task.pk == task.pk  # row locked until commit
        submitter = threading.Thread(target=late_submit)
        submitter.start()
        _wait_until_blocked_on_lock()
    submitter.join(10)
    assert "another reviewer now has this item" in str(outcome["a"])
    assert not Annotation.objects.exists()
    assert AuditEvent.objects.filter(action="annotation.rejected", actor_label="a").exists()
    task.refresh_from_db()
    assert task.leased_by == rev_b


def test_external_answer_does_not_disturb_an_in_app_lease(claimed, reviewer, queue) -> None:
    from labeling.models import AnnotationSource

    queue.required_annotations = 2
    queue.save()
    vendor = UserFactory(username="ls-annotator")
    result = submit(claimed, vendor, source=AnnotationSource.LABEL_STUDIO, handle_time_ms=90_000)
    claimed.refresh_from_db()
    assert result.created and not result.annotation.late and result.annotation.handle_time_ms == 90_000
    assert claimed.leased_by == reviewer  # the in-app reviewer keeps working on it
    assert submit(claimed, reviewer).created
