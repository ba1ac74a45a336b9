"""Online figures through the user's path: decisions over HTTP with audit sampling on, audit tasks
labelled by reviewers through the workspace services, then the lead page, REST and /metrics.

The expected precision is computed here by hand from what was sent and answered: which decisions
the ingest response says went to audit (they have a task), the audit rate in force when each was
sent, and the label the reviewer gave. A mid-week change of the audit rate makes the weights
unequal, so the Hájek figure differs from the plain share the test also computes.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from labeling.services.annotations import annotation_submit
from reviewapp.models import ModelDecision, ReviewTask
from reviewapp.services.claims import task_claim_next
from tests.factories import QueueFactory, UserFactory

DECISIONS = "/api/v1/decisions"
PAGE = "/models/harassment/online"
API = "/api/v1/online-metrics"


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0  # gold as soon as the one required answer is in


@pytest.fixture
def lead_client(db) -> Client:  # type: ignore[no-untyped-def]
    lead = UserFactory(username="lead")
    lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    client = Client()
    client.force_login(lead)
    return client


def _rows(prefix: str, scores: list[float], decided_at: str) -> list[dict]:
    return [
        {
            "source": "comments",
            "external_id": f"{prefix}-{i}",
            "text": f"comment {prefix} {i}",
            "policy": "harassment",
            "model_name": "tox-bert",
            "model_version": "v1",
            "score": score,
            "predicted_label": "violating",
            "decided_at": decided_at,
        }
        for i, score in enumerate(scores)
    ]


def _ingest(client: APIClient, rows: list[dict]) -> list[dict]:
    response = client.post(DECISIONS, {"decisions": rows}, format="json")
    assert response.status_code == 200, response.json()
    return response.json()["results"]


def _truth(external_id: str) -> bool:
    """The label the reviewer gives: a fixed, uneven pattern over item numbers."""
    number = int(external_id.rsplit("-", 1)[1])
    return number % 3 != 0 if external_id.startswith(("a", "b")) else number % 4 == 0


def _label_everything(queue, reviewer) -> int:  # type: ignore[no-untyped-def]
    answered = 0
    while (claim := task_claim_next(reviewer=reviewer, queue=queue)) is not None:
        labels = ["violating"] if _truth(claim.task.item.external_id) else ["not_violating"]
        annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels)
        answered += 1
    return answered


@pytest.fixture
def live(ingest_client, routing_rule, audit_queue, settings):  # type: ignore[no-untyped-def]
    """Decisions of one week with audit sampling on, the audit sample labelled; the expected figures."""
    settings.AL_TARGET_PRECISION = 0.99  # this model's automation falls short of it: the alert fires
    decided_at = timezone.now().isoformat()
    sent: list[tuple[dict, dict, float]] = []  # (row, result, audit rate in force)
    routing_rule.audit_rate_action, routing_rule.audit_rate_clear = 0.3, 0.5
    routing_rule.save()
    rows = _rows("a", [0.95] * 40, decided_at) + _rows("c", [0.05] * 24, decided_at) + _rows("r", [0.5] * 3, decided_at)
    for row, result in zip(rows, _ingest(ingest_client, rows), strict=True):
        sent.append((row, result, 0.3 if row["score"] > 0.9 else 0.5))
    routing_rule.audit_rate_action = 1.0  # mid-week: every automatic action is audited from now on
    routing_rule.save()
    rows = _rows("b", [0.97] * 6, decided_at)
    for row, result in zip(rows, _ingest(ingest_client, rows), strict=True):
        sent.append((row, result, 1.0))
    reviewer = UserFactory(username="auditor")
    assert _label_everything(audit_queue, reviewer) > 0

    audited = [
        (row, rate) for row, result, rate in sent if result["routing_outcome"] == "auto_action" and result["task_id"]
    ]
    weights = [1 / rate for _, rate in audited]
    hits = [_truth(row["external_id"]) for row, _ in audited]
    expected = sum(w for w, y in zip(weights, hits, strict=True) if y) / sum(weights)
    plain = sum(hits) / len(hits)
    n_eff = sum(weights) ** 2 / sum(w * w for w in weights)
    return {"precision": expected, "plain": plain, "n": len(audited), "n_eff": n_eff, "sent": sent}


def test_hand_computed_hajek_precision_is_what_the_page_rest_and_metrics_show(live, lead_client, make_token) -> None:
    assert abs(live["precision"] - live["plain"]) > 0.01  # unequal weights: weighting matters here
    assert (
        ModelDecision.objects.filter(audit_sampled=True).count()
        == ReviewTask.objects.filter(reason="audit_sample").count()
    )

    html = lead_client.get(PAGE).content.decode()
    assert f"<strong>{live['precision']:.3f}</strong>" in html
    assert f"audit-sample gold, n={live['n']}, n_eff={live['n_eff']:.1f}, weighted 1/π" in html
    assert "alert: precision below target" in html and "AL_TARGET_PRECISION" in html
    assert "ECE" in html and html.count("<svg") >= 3 and "<script>" not in html

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:read'])}")
    body = client.get(API, {"policy": "harassment"}).json()
    (model,) = body["models"]
    (week,) = model["weeks"]
    assert (model["model_name"], model["model_version"], model["alert"]) == ("tox-bert", "v1", True)
    assert week["precision"]["estimate"] == pytest.approx(live["precision"])
    assert week["precision"]["unweighted"] == pytest.approx(live["plain"])
    assert week["precision"]["n"] == live["n"] and week["precision"]["n_eff"] == pytest.approx(live["n_eff"], abs=1e-3)
    assert week["precision"]["high"] < 0.99 and week["alert"] is True
    assert week["decisions"] == len(live["sent"]) and week["auto_enforced"] == 46
    assert week["clear_miss_rate"]["n"] == week["sampled_cleared"] > 0
    assert "audit-sample gold" in body["measured_on"] and body["estimator"].startswith("Hájek")

    metrics = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}").get("/metrics")
    samples = {
        (s.name, s.labels.get("model_version")): s.value
        for family in text_string_to_metric_families(metrics.content.decode())
        for s in family.samples
        if s.name.startswith("reviewapp_online_") and s.labels.get("policy") == "harassment"
    }
    assert samples[("reviewapp_online_precision", "v1")] == pytest.approx(live["precision"])
    assert samples[("reviewapp_online_precision_upper", "v1")] == pytest.approx(week["precision"]["high"])
    assert samples[("reviewapp_online_precision_n_eff", "v1")] == pytest.approx(live["n_eff"])
    assert samples[("reviewapp_online_precision_alert", "v1")] == 1.0
    assert ("reviewapp_online_clear_miss_rate", "v1") in samples


def test_an_overturned_appeal_shows_on_the_model_versions_row(live, lead_client, make_token) -> None:
    appeals_queue = QueueFactory(slug="appeals", kind="appeals")
    unaudited = next(
        row for row, result, _ in live["sent"] if result["routing_outcome"] == "auto_action" and not result["task_id"]
    )
    appeals = APIClient()
    appeals.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['appeals:write'])}")
    body = {"source": "comments", "external_id": unaudited["external_id"], "policy": "harassment", "appeal_id": "ap-1"}
    assert appeals.post("/api/v1/appeals", body, format="json").status_code == 201
    reviewer = UserFactory(username="appeals-reviewer")
    claim = task_claim_next(reviewer=reviewer, queue=appeals_queue)
    annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["not_violating"])

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:read'])}")
    week = client.get(API, {"policy": "harassment"}).json()["models"][0]["weeks"][0]
    assert (week["appeals"]["decided"], week["appeals"]["overturned"], week["appeals"]["rate"]) == (1, 1, 1.0)
    assert 0 < week["appeals"]["low"] < 1 and week["appeals"]["high"] == pytest.approx(1.0)
    assert week["precision"]["n"] == live["n"]  # an appeal is not an audit: the estimate is unchanged
    assert "1 of 1 (1.000)" in lead_client.get(PAGE).content.decode()
    metrics = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(['metrics:read'])}").get("/metrics").content.decode()
    assert (
        'reviewapp_online_appeal_overturn_rate{model_name="tox-bert",model_version="v1",policy="harassment"} 1.0'
        in metrics
    )


def test_reviewers_and_unscoped_tokens_are_refused_and_bad_queries_get_400(live, make_token) -> None:
    reviewer = Client()
    reviewer.force_login(UserFactory(username="plain-reviewer"))
    assert reviewer.get(PAGE).status_code == 403
    assert reviewer.get(API, {"policy": "harassment"}).status_code == 403
    unscoped = APIClient()
    unscoped.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
    assert unscoped.get(API, {"policy": "harassment"}).status_code == 403
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['models:read'])}")
    missing = reader.get(API)
    assert missing.status_code == 400 and "policy" in str(missing.json())
    unknown = reader.get(API, {"policy": "nope"})
    assert unknown.status_code == 400 and "unknown policy 'nope'" in str(unknown.json())
    assert reader.get(API, {"policy": "harassment", "weeks": "0"}).status_code == 400


def test_page_without_audited_items_says_why_and_unknown_policy_is_404(lead_client, policy) -> None:
    assert lead_client.get("/models/nope/online").status_code == 404
    assert lead_client.get(PAGE + "?weeks=abc").status_code == 400
    html = lead_client.get(PAGE).content.decode()
    assert "No decisions from a model of" in html
    assert lead_client.get(f"/models/?policy={policy.key}").content.decode().count(PAGE) == 1
