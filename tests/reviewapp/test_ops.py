"""The operations dashboard shows the figures /metrics exports, to leads and staff, and polls them."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from activelearning.models import ModelVersion, TrainingRun
from labeling.services.annotations import annotation_submit
from reviewapp import metrics
from reviewapp.models import AuditEvent
from reviewapp.ops import activity_per_minute, duration_text
from reviewapp.services.claims import task_claim_next
from tests.activelearning.test_django_helpers import permission_objects
from tests.factories import QueueFactory, ReviewTaskFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_counters():  # type: ignore[no-untyped-def]
    cache.clear()


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="ops-lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    return client


@pytest.fixture
def busy(policy, queue, settings, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    """Open tasks (two past their SLA), a claim and an answer, task runs, a champion and a finished round."""
    settings.UNDO_WINDOW_SECONDS = 60
    ReviewTaskFactory.create_batch(3, policy=policy, queue=queue, due_at=timezone.now() + timedelta(hours=1))
    overdue = timezone.now() - timedelta(hours=1)
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue, due_at=overdue, priority=0)  # claimed last
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
    metrics.observe_handle_time(45.0)  # an answer given through Label Studio, say
    metrics.count("celery_tasks", "reviewapp.sweep_expired_leases", "success", amount=3)
    metrics.count("celery_tasks", "reviewapp.sweep_expired_leases", "failure")
    ModelVersion.objects.filter(pk=permission_objects(policy)["model_id"]).update(status="champion")
    TrainingRun.objects.create(
        policy=policy,
        status="succeeded",
        started_at=timezone.now() - timedelta(minutes=4),
        finished_at=timezone.now(),
        timings={"training": 150.0, "scoring": 42.0},
    )
    return queue


def test_a_lead_sees_every_figure(lead_client, busy) -> None:
    response = lead_client.get("/ops/")

    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r"<td>harassment-review</td>(.*?)</tr>", html, re.S)
    assert row is not None
    cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row.group(1))
    # open, oldest open, past SLA, claims, accepted, duplicates, refused
    assert cells[0] == "4" and cells[2] == "2" and cells[3] == "1" and cells[4] == "1"
    assert "2 answers, " in html and "30–60 s: 50%" in html
    assert "<code>reviewapp.sweep_expired_leases</code>" in html and '<td class="num warn">1</td>' in html
    assert "<code>al-harassment@v1</code>" in html and ">Succeeded<" in html and "4.0 min" in html
    assert "Stages of the latest harassment round" in html and "2.5 min" in html
    assert "0.003</strong> claims/s" in html  # one claim in the last five minutes
    assert html.count('<svg class="chart"') == 7  # activity, depth, age, SLA, handle time, tasks, one round
    assert 'hx-trigger="every 15s"' in html and 'href="/ops/"' in html


def test_an_htmx_poll_gets_only_the_figures(lead_client, busy) -> None:
    response = lead_client.get("/ops/", headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<div id="ops-figures"')
    assert "<html" not in html and "harassment-review" in html


def test_the_page_works_with_nothing_to_show(lead_client) -> None:
    html = lead_client.get("/ops/").content.decode()

    assert "No active queue." in html and "No answers recorded yet." in html
    assert "No task has run since the counters started." in html and "No model has been trained yet." in html


def test_staff_may_look_but_reviewers_may_not(db, queue) -> None:
    staff, reviewer = Client(), Client()
    staff.force_login(UserFactory(username="sre", is_staff=True))
    reviewer.force_login(UserFactory(username="reviewer"))

    assert staff.get("/ops/").status_code == 200
    assert reviewer.get("/ops/").status_code == 403
    assert "/accounts/login/" in Client().get("/ops/")["Location"]


def test_leads_and_staff_find_it_in_the_navigation(lead_client, db) -> None:
    reviewer = Client()
    reviewer.force_login(UserFactory(username="reviewer"))

    assert 'href="/ops/"' in lead_client.get("/").content.decode()
    assert 'href="/ops/"' not in reviewer.get("/").content.decode()


def test_activity_counts_claims_and_answers_per_minute_from_the_audit_log(db) -> None:
    three_minutes_ago = timezone.now() - timedelta(minutes=3, seconds=30)
    event = {"actor_label": "r", "object_type": "task", "object_id": "1", "occurred_at": three_minutes_ago}
    AuditEvent.objects.bulk_create([AuditEvent(action="task.claimed", **event) for _ in range(120)])
    AuditEvent.objects.create(action="annotation.submitted", **{**event, "occurred_at": timezone.now()})
    AuditEvent.objects.create(action="task.released", **event)  # not counted
    AuditEvent.objects.create(action="task.claimed", **{**event, "occurred_at": timezone.now() - timedelta(hours=2)})

    series = activity_per_minute(minutes=60)

    assert len(series["claims"]) == 60 and series["claims"][-4] == 2.0 and sum(series["claims"]) == 2.0
    assert series["submissions"][-1] == pytest.approx(1 / 60) and sum(series["submissions"]) == pytest.approx(1 / 60)


def test_the_page_reads_a_fixed_number_of_queries(lead_client, busy, django_assert_max_num_queries) -> None:
    QueueFactory.create_batch(5)
    with django_assert_max_num_queries(10):
        assert lead_client.get("/ops/").status_code == 200


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.31, "4.3 s"), (42, "42 s"), (450, "7.5 min"), (3 * 3600, "3.0 h"), (2.5 * 86400, "2.5 d")]
)
def test_durations_read_like_a_dashboard(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
