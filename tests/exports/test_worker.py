"""Through a real Celery worker and Redis: background exports, builds and webhook deliveries."""

from __future__ import annotations

import hashlib
import json

import pytest

from labeling.exports.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from labeling.exports.webhooks import FAN_OUT_AT, endpoint_create, sign
from tests.exports.conftest import body
from tests.exports.receiver import webhook_receiver
from tests.worker import wait_for

pytestmark = pytest.mark.worker


@pytest.fixture
def golds(hate, make_gold):  # type: ignore[no-untyped-def]
    return [make_gold(hate, ["violating" if n % 2 else "not_violating"], text=f"t{n}") for n in range(8)]


def test_background_export_and_build_run_on_the_worker(
    transactional_db, celery_worker_process, golds, api, settings
) -> None:
    settings.SNAPSHOT_SYNC_MAX_ROWS = 0  # every version is built by the worker, the first one too
    created = api.post("/api/v1/datasets/", {"slug": "w", "name": "W"}, format="json")
    assert created.status_code == 201, created.content
    build = created.json()["first_build"]  # creating over REST builds, as the lead page's Create does
    assert build is not None and created.json()["first_version"] is None
    version_url = wait_for(lambda: api.get(build["url"]).json()["version_url"], timeout=60)
    version = api.get(version_url).json()
    assert version["row_count"] == 8
    assert version["split_definition"]["group_by"] == "content"  # the worker grouped the items by content

    streamed = {fmt: body(api.get(version["exports"][fmt])) for fmt in ("jsonl", "parquet")}
    assert hashlib.sha256(streamed["jsonl"]).hexdigest() == version["content_hash"]
    for fmt, expected in streamed.items():
        job = api.get(version["exports"][fmt] + "&background=true").json()
        assert job["format"] == fmt
        done = wait_for(lambda job=job: api.get(job["url"]).json()["download_url"], timeout=60)
        assert body(api.get(done)) == expected, fmt  # the job's file has the streaming bytes


def test_webhooks_are_delivered_signed_and_retried(
    transactional_db, celery_worker_process, golds, api, hate, make_gold, settings
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True  # here; the worker has it from its environment (conftest.py)
    with webhook_receiver(503, 200) as receiver:
        endpoint = endpoint_create(url=receiver.url, events=["snapshot.ready", "gold_label.created"])
        api.post("/api/v1/datasets/", {"slug": "hooked", "name": "Hooked", "build": False}, format="json")
        api.post("/api/v1/datasets/hooked/versions/", {}, format="json")
        make_gold(hate, text="new gold")  # gold_record queues the gold_label.created delivery
        delivered = wait_for(
            lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2, timeout=30
        )
        assert delivered
    secret = WebhookEndpoint.objects.get(pk=endpoint.pk).secret
    for request in receiver.requests:
        assert request.headers["X-Reviewapp-Signature"] == sign(secret, request.body)
    events = sorted({json.loads(request.body)["event"] for request in receiver.requests})
    assert events == ["gold_label.created", "snapshot.ready"]
    attempts = sorted(WebhookDelivery.objects.values_list("attempts", flat=True))
    assert attempts == [1, 2] and len(receiver.requests) == 3  # the first answer (503) was retried
    retried = WebhookDelivery.objects.get(attempts=2)
    assert retried.last_status_code == 200 and retried.delivered_at is not None


def test_a_batch_of_enforced_decisions_reaches_the_upstream_through_the_worker(
    transactional_db, celery_worker_process, routing_rule, ingest_client, settings
) -> None:
    """More events than FAN_OUT_AT in one ingest: one fan-out task enqueues them, each is delivered."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    count = FAN_OUT_AT + 2
    rows = [
        {"source": "comments", "external_id": f"ü-{n}", "text": "t", "policy": "harassment", "model_name": "tox",
         "model_version": "1", "score": 0.99}
        for n in range(count)
    ]  # fmt: skip
    with webhook_receiver(200) as receiver:
        endpoint = endpoint_create(url=receiver.url, events=["decision.enforced"])
        assert ingest_client.post("/api/v1/decisions", {"decisions": rows}, format="json").status_code == 200
        delivered = wait_for(
            lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == count, timeout=60
        )
        assert delivered
    secret = WebhookEndpoint.objects.get(pk=endpoint.pk).secret
    assert all(request.headers["X-Reviewapp-Signature"] == sign(secret, request.body) for request in receiver.requests)
    data = [json.loads(request.body)["data"] for request in receiver.requests]
    assert sorted(d["external_id"] for d in data) == sorted(row["external_id"] for row in rows)
    assert {(d["source"], d["policy"], d["routing_outcome"]) for d in data} == {
        ("comments", "harassment", "auto_action")
    }
