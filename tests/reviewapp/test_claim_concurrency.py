"""Many reviewers claiming from one queue at once, against real PostgreSQL."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import pytest
from django.db import connection

from labeling.services.annotations import annotation_submit
from reviewapp.models import AuditEvent, ReviewTask, TaskStatus
from reviewapp.services.claims import task_claim_next
from tests.factories import ReviewTaskFactory, UserFactory

# Slow tier: threads racing on real transactions (transactional_db flushes).
pytestmark = pytest.mark.slow

THREADS = 8


def run_in_threads(target, args_list):  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []

    def wrapped(*args):  # type: ignore[no-untyped-def]
        try:
            target(*args)
        except BaseException as error:  # surfaced below, so a thread failure fails the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrapped, args=args) for args in args_list]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


def test_every_task_is_claimed_exactly_once(transactional_db, policy, queue) -> None:
    tasks = ReviewTaskFactory.create_batch(120, policy=policy, queue=queue)
    reviewers = [UserFactory() for _ in range(THREADS)]
    handled: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(reviewer) -> None:  # type: ignore[no-untyped-def]
        while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
            with lock:
                handled.append((claim.task.pk, reviewer.pk))
            annotation_submit(
                task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["not_violating"]
            )

    run_in_threads(work, [(r,) for r in reviewers])
    counts = Counter(task_id for task_id, _ in handled)
    assert sorted(counts) == sorted(t.pk for t in tasks)
    assert set(counts.values()) == {1}
    assert ReviewTask.objects.filter(status=TaskStatus.COMPLETED).count() == 120
    assert len({r for _, r in handled}) > 1  # the work really was shared


def test_multi_annotation_queue_gets_distinct_reviewers_per_item(transactional_db, policy, queue) -> None:
    queue.required_annotations = 3
    queue.save()
    ReviewTaskFactory.create_batch(30, policy=policy, queue=queue)
    reviewers = [UserFactory() for _ in range(THREADS)]

    def work(reviewer) -> None:  # type: ignore[no-untyped-def]
        # "Nothing claimable now" is not "done": the items others hold may need this reviewer next.
        while True:
            claim = task_claim_next(reviewer=reviewer, queue=queue)
            if claim is None:
                if not ReviewTask.objects.filter(queue=queue, status="open").exclude(annotations__reviewer=reviewer):
                    return
                time.sleep(0.005)
                continue
            annotation_submit(
                task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"]
            )

    run_in_threads(work, [(r,) for r in reviewers])
    from labeling.models import Annotation

    per_task = Counter(Annotation.objects.values_list("task_id", flat=True))
    assert set(per_task.values()) == {3}
    pairs = Annotation.objects.values_list("task_id", "reviewer_id")
    assert len(pairs) == len(set(pairs))  # nobody labelled the same item twice
    assert ReviewTask.objects.filter(status=TaskStatus.COMPLETED).count() == 30
    assert AuditEvent.objects.filter(action="annotation.submitted").count() == 90


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_claims_never_double_lease(transactional_db, policy, queue, attempt: int) -> None:
    ReviewTaskFactory.create_batch(5, policy=policy, queue=queue)
    reviewers = [UserFactory() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    won: list[int] = []

    def claim(reviewer) -> None:  # type: ignore[no-untyped-def]
        barrier.wait()
        result = task_claim_next(reviewer=reviewer, queue=queue)
        if result is not None:
            won.append(result.task.pk)

    run_in_threads(claim, [(r,) for r in reviewers])
    assert len(won) == 5 and len(set(won)) == 5
