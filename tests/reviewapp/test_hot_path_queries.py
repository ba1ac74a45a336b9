"""The reviewer's hot path, claim → render → submit, in database statements and Redis round trips.

Every statement is a round trip between the web process and PostgreSQL that 50 concurrent
reviewers pay on every item (bench/load.py); these counts are pinned so that an added query
shows up here. Counted inside the test's transaction, so each `atomic()` of the code adds a
SAVEPOINT and a RELEASE where production sends BEGIN and COMMIT.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from labeling.models import Annotation
from labeling.services.annotations import annotation_submit
from reviewapp import metrics
from reviewapp.models import AuditEvent, ReviewTask, TaskStatus
from tests.factories import ReviewTaskFactory, UserFactory

HTMX = {"HTTP_HX_REQUEST": "true"}
# Session, user, lead check, the queue (or task) the reviewer may work.
REQUEST_PREAMBLE = 4
# task_claim_next: the reviewer's standing in the queue (onboarding, pause), then one statement
# that resumes or claims, its audit row included.
CLAIM = 2
# task_held: the GET of the queue page reads the task the reviewer holds; it never claims.
HELD = 1
# The page around an item: the reviewer's graphic exposure count, the policy version in force,
# and the session counter (answers since sign-in and open tasks of the queue, one statement).
RENDER = 3
# annotation_submit, in one transaction (a savepoint pair here): lock the task; what the answer is
# checked against (the clock, an earlier answer with this submission id, a live answer of this
# reviewer), read together; the policy version; the annotation; the task; its audit events.
SUBMIT = 2 + 6


@pytest.fixture
def reviewer(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="rev1")
    queue.members.add(user)
    return user


@pytest.fixture
def reviewer_client(reviewer) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(reviewer)
    client.get("/")  # the session exists before anything is counted
    return client


def submission_form(html: str) -> dict[str, str]:
    submission = re.search(r'name="submission_id" value="([0-9a-f-]{36})"', html)
    version = re.search(r'name="policy_version" value="(\d+)"', html)
    assert submission and version, html
    return {
        "submission_id": submission.group(1),
        "policy_version": version.group(1),
        "labels": "violating",
        "handle_time_ms": "2500",
    }


def statements(context: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in context.captured_queries]


def repeated(sqls: list[str]) -> list[str]:
    """Statements sent more than once (savepoint bookkeeping aside): a sign of a query in a loop."""
    counts = Counter(sql for sql in sqls if "SAVEPOINT" not in sql)
    return [sql for sql, n in counts.items() if n > 1]


def start(client: Client, queue) -> str:  # type: ignore[no-untyped-def]
    """The "Start reviewing" button: POST the claim, then the queue page it redirects to."""
    assert client.post(f"/queues/{queue.pk}/work").status_code == 302
    return client.get(f"/queues/{queue.pk}/work").content.decode()


def test_claim_and_render_the_workspace_page(reviewer_client, policy, queue) -> None:
    ReviewTaskFactory.create_batch(3, policy=policy, queue=queue)
    with CaptureQueriesContext(connection) as context:
        response = reviewer_client.post(f"/queues/{queue.pk}/work")
    assert response.status_code == 302
    assert len(context) == REQUEST_PREAMBLE + CLAIM, statements(context)
    with CaptureQueriesContext(connection) as context:
        response = reviewer_client.get(f"/queues/{queue.pk}/work")
    assert response.status_code == 200 and 'name="labels"' in response.content.decode()
    assert len(context) == REQUEST_PREAMBLE + HELD + RENDER, statements(context)
    assert not repeated(statements(context))


def test_claim_with_htmx_renders_the_task_in_the_same_response(reviewer_client, policy, queue) -> None:
    ReviewTaskFactory.create_batch(3, policy=policy, queue=queue)
    with CaptureQueriesContext(connection) as context:
        response = reviewer_client.post(f"/queues/{queue.pk}/work", **HTMX)
    assert response.status_code == 200 and 'name="labels"' in response.content.decode()
    assert len(context) == REQUEST_PREAMBLE + CLAIM + RENDER, statements(context)
    assert not repeated(statements(context))


def test_submit_as_a_plain_form_post(reviewer_client, policy, queue, reviewer) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    form = submission_form(start(reviewer_client, queue))
    claimed = ReviewTask.objects.get(leased_by=reviewer)
    with CaptureQueriesContext(connection) as context:
        response = reviewer_client.post(f"/tasks/{claimed.pk}/submit", form)
    assert response.status_code == 302
    # The next item is claimed here, in the POST, since the page the redirect leads to only shows it.
    assert len(context) == REQUEST_PREAMBLE + SUBMIT + CLAIM, statements(context)
    assert not repeated(statements(context))
    assert Annotation.objects.get().task_id == claimed.pk
    assert AuditEvent.objects.filter(action__in=["annotation.submitted", "task.completed"]).count() == 2


def test_submit_with_htmx_records_and_shows_the_next_item(reviewer_client, policy, queue, reviewer) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    form = submission_form(start(reviewer_client, queue))
    claimed = ReviewTask.objects.get(leased_by=reviewer)
    with CaptureQueriesContext(connection) as context:
        response = reviewer_client.post(f"/tasks/{claimed.pk}/submit", form, **HTMX)
    assert response.status_code == 200 and "Saved." in response.content.decode()
    assert len(context) == REQUEST_PREAMBLE + SUBMIT + CLAIM + RENDER, statements(context)
    assert not repeated(statements(context))
    assert ReviewTask.objects.filter(leased_by=reviewer, status=TaskStatus.OPEN).count() == 1


def test_a_retried_submission_returns_the_recorded_answer_and_writes_nothing(
    reviewer_client, policy, queue, reviewer
) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    form = submission_form(start(reviewer_client, queue))
    claimed = ReviewTask.objects.get(leased_by=reviewer)
    reviewer_client.post(f"/tasks/{claimed.pk}/submit", form)
    with CaptureQueriesContext(connection) as context:
        annotation_submit(
            task_id=claimed.pk, reviewer=reviewer, submission_id=uuid.UUID(form["submission_id"]), labels=["violating"]
        )
    # The transaction, lock, checks, then the earlier annotation with its task and queue; no write.
    assert len(context) == 2 + 3, statements(context)
    assert not any(sql.startswith(("INSERT", "UPDATE")) for sql in statements(context))
    assert Annotation.objects.count() == 1


def test_server_timing_says_where_a_workspace_response_spent_its_time(reviewer_client, policy, queue, reviewer) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    assert reviewer_client.post(f"/queues/{queue.pk}/work").headers["Server-Timing"].startswith("claim;dur=")
    page = reviewer_client.get(f"/queues/{queue.pk}/work")
    assert re.fullmatch(r"resume;dur=[\d.]+, render;dur=[\d.]+", page.headers["Server-Timing"])
    claimed = ReviewTask.objects.get(leased_by=reviewer)
    response = reviewer_client.post(f"/tasks/{claimed.pk}/submit", submission_form(page.content.decode()), **HTMX)
    assert re.fullmatch(r"submit;dur=[\d.]+, claim;dur=[\d.]+, render;dur=[\d.]+", response.headers["Server-Timing"])


@pytest.fixture
def redis_cache(settings):  # type: ignore[no-untyped-def]
    """The production cache backend on the test broker's Redis, under a prefix of this test's own."""
    prefix = f"test-metrics-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": settings.CELERY_BROKER_URL,
            "KEY_PREFIX": prefix,
        }
    }
    yield cache
    writer = metrics.redis_writer()
    assert writer is not None
    keys = list(writer.scan_iter(match=f"{prefix}:*"))
    if keys:
        writer.delete(*keys)


def test_counters_written_in_one_pipeline_are_read_back_by_the_cache(redis_cache) -> None:
    metrics.count("claims", "q1")
    metrics.count_submission_accepted(queue="q1", handle_seconds=4.2)
    metrics.count_submission_accepted(queue="q1", handle_seconds=700)
    metrics.count("claims", "q1", amount=3)
    keys = [
        "metrics:claims:q1",
        "metrics:submissions:q1:accepted",
        "metrics:handle_time_bucket:5",
        "metrics:handle_time_bucket:inf",
        "metrics:handle_time_ms_sum",
    ]
    assert redis_cache.get_many(keys) == dict(zip(keys, [4, 2, 1, 1, 704200], strict=True))


def test_counters_survive_values_written_through_the_cache_api(redis_cache) -> None:
    redis_cache.set("metrics:claims:q2", 5, timeout=None)
    metrics.count("claims", "q2")
    assert redis_cache.get("metrics:claims:q2") == 6


def test_a_metrics_outage_does_not_fail_the_caller(settings, caplog) -> None:
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
    }
    metrics.count_submission_accepted(queue="q3", handle_seconds=1.0)
    assert "could not record metrics" in caplog.text
