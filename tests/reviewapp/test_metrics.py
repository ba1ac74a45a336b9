"""/metrics exposes queue gauges from the database and counters shared by all processes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from activelearning.models import ModelVersion, TrainingRun
from labeling.services.annotations import annotation_submit
from reviewapp import metrics
from reviewapp.services.claims import task_claim_next
from tests.activelearning.test_django_helpers import permission_objects
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


def test_model_in_use_and_latest_round_timings(make_token, policy) -> None:
    ModelVersion.objects.filter(pk=permission_objects(policy)["model_id"]).update(status="champion")
    end = timezone.now()
    earlier = end - timedelta(days=2)
    old = TrainingRun.objects.create(
        policy=policy, status="succeeded", started_at=earlier, finished_at=earlier, timings={"training": 99.0}
    )
    TrainingRun.objects.filter(pk=old.pk).update(created_at=earlier)
    TrainingRun.objects.create(
        policy=policy,
        status="failed",
        started_at=end - timedelta(seconds=90),
        finished_at=end,
        timings={"loading": 1.5, "training": 60.25},
    )
    TrainingRun.objects.create(policy=policy, status="running", timings={"loading": 7.0})  # not finished

    samples = scrape(Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}"))

    in_use = (("model", "al-harassment"), ("policy", "harassment"), ("version", "v1"))
    assert samples[("reviewapp_model_in_use_info", in_use)] == 1
    latest = (("policy", "harassment"), ("status", "failed"))
    assert samples[("reviewapp_al_round_duration_seconds", latest)] == 90
    assert samples[("reviewapp_al_round_finished_timestamp_seconds", latest)] == end.timestamp()
    assert samples[("reviewapp_al_round_stage_seconds", (("policy", "harassment"), ("stage", "training")))] == 60.25
    assert samples[("reviewapp_al_round_stage_seconds", (("policy", "harassment"), ("stage", "loading")))] == 1.5


def test_every_figure_of_the_ops_dashboard_is_exported(make_token, queue) -> None:
    response = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}").get("/metrics")
    families = {family.name for family in text_string_to_metric_families(response.content.decode())}

    assert {
        "reviewapp_queue_depth",
        "reviewapp_queue_oldest_task_age_seconds",
        "reviewapp_queue_sla_breaches",
        "reviewapp_claims",  # claims/s: rate(reviewapp_claims_total[5m])
        "reviewapp_submissions",
        "reviewapp_handle_time_seconds",
        "reviewapp_celery_tasks",
        "reviewapp_model_in_use_info",
        "reviewapp_al_round_duration_seconds",
        "reviewapp_al_round_stage_seconds",
    } <= families


def test_task_outcomes_are_exported_for_tasks_the_web_process_never_imported(make_token, db) -> None:
    metrics.count("celery_tasks", "reviewapp.sweep_expired_leases", "failure")

    samples = scrape(Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}"))

    outcome = (("state", "failure"), ("task", "reviewapp.sweep_expired_leases"))
    assert samples[("reviewapp_celery_tasks_total", outcome)] == 1
