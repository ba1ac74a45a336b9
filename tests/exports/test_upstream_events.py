"""An upstream system acts on webhooks alone: every event names the item by its own ids.

Through the user's path: decisions arrive over the ingest API, reviewers answer over the task
API, a lead decides on the adjudication page, the upstream forwards an appeal over the appeals
API; a loopback receiver gets the signed events (attempts are made here, one at a time; the
worker's delivery is tested in test_worker.py).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import Client
from rest_framework.test import APIClient

from labeling.exports.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from labeling.exports.webhooks import FAN_OUT_AT, delivery_attempt, endpoint_create, sign
from labeling.models import Adjudication
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem, ModelDecision, Queue
from reviewapp.services.ingest import decisions_ingest
from tests.exports.receiver import Receiver, webhook_receiver
from tests.factories import QueueFactory, UserFactory

EVENTS = ["appeal.decided", "decision.enforced", "gold_label.created"]


@pytest.fixture(autouse=True)
def _settings(settings):  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.UNDO_WINDOW_SECONDS = 0  # answers resolve at once, so gold and appeals follow in the request


def row(external_id: str, score: float, **extra: Any) -> dict[str, Any]:
    return {
        "source": "comments",
        "external_id": external_id,
        "text": "you are a clown",
        "policy": "harassment",
        "model_name": "tox-bert",
        "model_version": "2026.11",
        "score": score,
        **extra,
    }


def ingest(client: APIClient, rows: list[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/api/v1/decisions", {"decisions": rows}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def deliver_all(receiver: Receiver) -> list[dict[str, Any]]:
    """Attempt every pending delivery once; the envelopes the receiver got, checked for their signature."""
    for delivery_id in WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).values_list("pk", flat=True):
        assert delivery_attempt(delivery_id=delivery_id) is None
    secret = WebhookEndpoint.objects.get().secret
    envelopes = []
    for request in receiver.requests:
        assert request.headers["X-Reviewapp-Signature"] == sign(secret, request.body)
        envelope = json.loads(request.body)
        assert request.headers["X-Reviewapp-Event"] == envelope["event"]
        envelopes.append(envelope)
    receiver.requests.clear()
    return envelopes


def reviewer_client(make_token, queue: Queue, username: str) -> APIClient:  # type: ignore[no-untyped-def]
    reviewer = UserFactory(username=username)
    queue.members.add(reviewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=reviewer)}")
    return client


def answer(client: APIClient, queue: Queue, labels: list[str]) -> int:
    claimed = client.post(f"/api/v1/queues/{queue.pk}/claim")
    assert claimed.status_code == 200, claimed.content
    task_id = claimed.json()["id"]
    body = {"submission_id": str(uuid.uuid4()), "labels": labels, "handle_time_ms": 2000}
    assert client.post(f"/api/v1/tasks/{task_id}/annotations", body, format="json").status_code == 201
    return task_id


@pytest.fixture
def review_queue(queue):  # type: ignore[no-untyped-def]
    queue.required_annotations = 2
    queue.save(update_fields=["required_annotations"])
    return queue


@pytest.mark.usefixtures("routing_rule")
def test_the_upstream_hears_of_enforcement_gold_and_appeal_by_its_own_ids(
    ingest_client, make_token, review_queue
) -> None:
    appeals_queue = QueueFactory(slug="appeals", kind="appeals")
    with webhook_receiver(200) as receiver:
        endpoint_create(url=receiver.url, events=EVENTS)

        # 1. Ingest: one decision enforced automatically, one to review, one cleared.
        ingest(ingest_client, [row("c-1", 0.95, predicted_label="violating"), row("c-2", 0.5), row("c-3", 0.1)])
        (enforced,) = deliver_all(receiver)
        assert enforced["event"] == "decision.enforced"
        decision = ModelDecision.objects.get(item__external_id="c-1")
        assert enforced["data"] == {
            "decision_id": decision.pk,
            "item_id": decision.item_id,
            "source": "comments",
            "external_id": "c-1",
            "policy": "harassment",
            "policy_version": 1,
            "model_name": "tox-bert",
            "model_version": "2026.11",
            "score": 0.95,
            "predicted_label": "violating",
            "routing_outcome": "auto_action",
            "thresholds": {"auto_action": 0.9, "auto_clear": 0.2},
            "audit_sampled": False,
            "sampling_propensity": 0.0,
            "decided_at": None,
            "received_at": decision.received_at.isoformat(),
        }

        # 2. Two reviewers disagree on c-2; a lead adjudicates on the adjudication page.
        answer(reviewer_client(make_token, review_queue, "rev-a"), review_queue, ["violating"])
        answer(reviewer_client(make_token, review_queue, "rev-b"), review_queue, ["not_violating"])
        assert deliver_all(receiver) == []  # a disagreement is no outcome yet
        lead = UserFactory(username="lead-name")
        lead.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
        lead_client = Client()
        lead_client.force_login(lead)
        adjudication = Adjudication.objects.get()
        decided = lead_client.post(f"/lead/adjudications/{adjudication.pk}/decide", {"labels": ["violating"]})
        assert decided.status_code == 302
        (gold_event,) = deliver_all(receiver)
        adjudication.refresh_from_db()
        gold = adjudication.gold
        assert gold_event["event"] == "gold_label.created"
        assert {
            key: gold_event["data"][key]
            for key in ("gold_label_id", "source", "external_id", "policy", "policy_version", "labels", "route")
        } == {
            "gold_label_id": gold.pk,
            "source": "comments",
            "external_id": "c-2",
            "policy": "harassment",
            "policy_version": 1,
            "labels": ["violating"],
            "route": "low_confidence",
        }
        assert gold_event["data"]["adjudicator_kind"] == "lead"
        assert gold_event["data"]["label_source"] == "adjudication"
        assert gold_event["data"]["routing_outcome"] == "review" and gold_event["data"]["created_at"]

        # 3. The user appeals the enforcement of c-1; an appeals reviewer overturns it.
        appeals = APIClient()
        appeals.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['appeals:write'])}")
        appeal = {"source": "comments", "external_id": "c-1", "policy": "harassment", "appeal_id": "up-77"}
        assert appeals.post("/api/v1/appeals", appeal, format="json").status_code == 201
        answer(reviewer_client(make_token, appeals_queue, "rev-c"), appeals_queue, ["not_violating"])
        events = {envelope["event"]: envelope["data"] for envelope in deliver_all(receiver)}

    assert sorted(events) == ["appeal.decided", "gold_label.created"]
    decided_appeal = events["appeal.decided"]
    assert (decided_appeal["source"], decided_appeal["external_id"], decided_appeal["policy"]) == (
        "comments",
        "c-1",
        "harassment",
    )
    assert (decided_appeal["appeal_id"], decided_appeal["outcome"], decided_appeal["policy_version"]) == (
        "up-77",
        "overturned",
        1,
    )
    assert (decided_appeal["original_labels"], decided_appeal["labels"]) == (["violating"], ["not_violating"])
    assert decided_appeal["gold_label_id"] == events["gold_label.created"]["gold_label_id"]
    assert decided_appeal["decided_at"] and decided_appeal["original_source"] == "model"
    assert decided_appeal["decision"] == {
        "decision_id": decision.pk,
        "model_name": "tox-bert",
        "model_version": "2026.11",
        "score": 0.95,
        "routing_outcome": "auto_action",
    }
    assert (events["gold_label.created"]["route"], events["gold_label.created"]["adjudicator_kind"]) == (
        "appeal",
        "reviewers",
    )
    sent = json.dumps(list(WebhookDelivery.objects.values_list("payload", flat=True)))
    for person in ("lead-name", "rev-a", "rev-b", "rev-c"):
        assert person not in sent  # no event names a reviewer or a lead


@pytest.mark.usefixtures("routing_rule")
def test_resent_and_unenforced_decisions_send_nothing(ingest_client) -> None:
    endpoint_create(url="http://127.0.0.1:9/hook", events=EVENTS)
    rows = [row("c-1", 0.95), row("c-2", 0.5), row("c-3", 0.1)]
    ingest(ingest_client, rows)
    assert [r["status"] for r in ingest(ingest_client, rows)["results"]] == ["duplicate"] * 3

    assert [d.payload["external_id"] for d in WebhookDelivery.objects.all()] == ["c-1"]


@pytest.mark.usefixtures("routing_rule")
def test_audit_sampled_enforcements_are_enforced_events_too(ingest_client, routing_rule) -> None:
    routing_rule.audit_rate_action = 1.0
    routing_rule.save(update_fields=["audit_rate_action"])
    endpoint_create(url="http://127.0.0.1:9/hook", events=["decision.enforced"])

    ingest(ingest_client, [row("c-1", 0.95)])

    (delivery,) = WebhookDelivery.objects.all()
    assert (delivery.payload["audit_sampled"], delivery.payload["sampling_propensity"]) == (True, 1.0)


@pytest.mark.usefixtures("routing_rule")
def test_a_batch_is_one_event_per_enforced_decision(ingest_client) -> None:
    endpoint_create(url="http://127.0.0.1:9/hook", events=["decision.enforced"])

    ingest(ingest_client, [row(f"c-{n}", 0.95) for n in range(FAN_OUT_AT)])

    payloads = WebhookDelivery.objects.order_by("pk").values_list("payload", "event_id")
    assert [p["external_id"] for p, _ in payloads] == [f"c-{n}" for n in range(FAN_OUT_AT)]
    assert len({event_id for _, event_id in payloads}) == FAN_OUT_AT  # receivers deduplicate by event id


@pytest.mark.usefixtures("routing_rule")
def test_without_a_subscriber_ingest_writes_no_delivery(ingest_client) -> None:
    endpoint_create(url="http://127.0.0.1:9/hook", events=["snapshot.ready"])

    ingest(ingest_client, [row("c-1", 0.95)])

    assert ContentItem.objects.count() == 1 and not WebhookDelivery.objects.exists()


@pytest.mark.usefixtures("routing_rule")
def test_a_rolled_back_ingest_sends_nothing() -> None:
    endpoint_create(url="http://127.0.0.1:9/hook", events=["decision.enforced"])
    with pytest.raises(RuntimeError), transaction.atomic():
        decisions_ingest(rows=[row("c-1", 0.95)], actor=SYSTEM)
        assert WebhookDelivery.objects.count() == 1  # written with the decision
        raise RuntimeError("the caller's transaction failed")

    assert not WebhookDelivery.objects.exists() and not ModelDecision.objects.exists()
