"""/metrics exposes queue gauges from the database and counters shared by all processes."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from labeling.services import annotation_submit
from reviewapp.services.claims import task_claim_next
from tests.factories import ReviewTaskFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_counters():  # type: ignore[no-untyped-def]
    cache.clear()


def scrape(client: Client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_need_a_scoped_token(make_token, db) -> None:
    assert Client().get("/metrics").status_code == 401
    wrong = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['export:read'])}")
    assert wrong.get("/metrics").status_code == 401
    right = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}")
    assert right.get("/metrics").status_code == 200


def test_queue_gauges_and_work_counters(
    make_token, policy, queue, settings, django_capture_on_commit_callbacks
) -> None:
    settings.UNDO_WINDOW_SECONDS = 60
    ReviewTaskFactory.create_batch(3, policy=policy, queue=queue)
    reviewer = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        claim = task_claim_next(reviewer=reviewer, queue=queue)
        annotation_submit(
            task_id=claim.task.pk,
            reviewer=reviewer,
            submission_id=uuid.uuid4(),
            labels=["violating"],
            handle_time_ms=4000,
        )
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}")
    samples = scrape(client)
    q = (("queue", queue.slug),)
    assert samples[("reviewapp_queue_depth", q)] == 2
    assert samples[("reviewapp_claims_total", q)] == 1
    assert samples[("reviewapp_submissions_total", (("outcome", "accepted"), ("queue", queue.slug)))] == 1
    assert samples[("reviewapp_handle_time_seconds_count", ())] == 1
    assert samples[("reviewapp_handle_time_seconds_bucket", (("le", "600"),))] == 1
    assert samples[("reviewapp_handle_time_seconds_bucket", (("le", "+Inf"),))] == 1
