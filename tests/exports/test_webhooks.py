"""Webhooks: URL checks, signing, events written with the change, one attempt's bookkeeping."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from labeling.exports import webhooks
from labeling.exports.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from labeling.exports.snapshots import SnapshotFilter, dataset_create, snapshot_create
from labeling.exports.webhooks import UnsafeTarget, check_webhook_url, delivery_attempt, endpoint_create, sign
from reviewapp.audit import SYSTEM
from tests.exports.receiver import webhook_receiver


@pytest.fixture(autouse=True)
def _allow_loopback(settings):  # type: ignore[no-untyped-def]
    settings.WEBHOOK_ALLOW_PRIVATE = True


def test_signature_is_hmac_sha256_of_the_body() -> None:
    expected = hmac.new(b"s3cret", b'{"a":1}', hashlib.sha256).hexdigest()
    assert sign("s3cret", b'{"a":1}') == f"sha256={expected}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::1]:8080/hook",
        "https://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.0.5/",
        "http://0.0.0.0/",
    ],
)
def test_private_and_local_targets_are_refused_in_production(settings, url: str) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(UnsafeTarget, match="private or local"):
        check_webhook_url(url)


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost", "http://u:p@1.2.3.4/"])
def test_only_plain_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_webhook_url(url)


def test_public_addresses_are_accepted(settings) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    assert check_webhook_url("https://93.184.216.34/hook") == "93.184.216.34"


def test_endpoint_needs_known_events(db) -> None:
    with pytest.raises(ValidationError):
        endpoint_create(url="http://127.0.0.1:9/", events=["everything"])
    endpoint = endpoint_create(url="http://127.0.0.1:9/", events=["gold_label.created", "snapshot.ready"])
    assert endpoint.events == ["gold_label.created", "snapshot.ready"] and len(endpoint.secret) == 32
    assert endpoint.secret not in repr(endpoint)


def test_events_are_recorded_with_the_change_and_sent_after_commit(
    db, hate, make_gold, django_capture_on_commit_callbacks
) -> None:
    ready = endpoint_create(url="http://127.0.0.1:9/a", events=["snapshot.ready"])
    gold_hook = endpoint_create(url="http://127.0.0.1:9/b", events=["gold_label.created"])
    inactive = endpoint_create(url="http://127.0.0.1:9/c", events=["snapshot.ready"])
    WebhookEndpoint.objects.filter(pk=inactive.pk).update(is_active=False)
    with django_capture_on_commit_callbacks() as callbacks:
        gold = make_gold(hate)  # gold_record queues the gold_label.created event itself
        dataset = dataset_create(slug="d", name="d", filters=SnapshotFilter(), actor=SYSTEM)
        snapshot = snapshot_create(dataset_id=dataset.pk, filters=SnapshotFilter(), actor=SYSTEM)
    assert len(callbacks) == 2  # one enqueue per event, run only after commit
    (gold_delivery,) = WebhookDelivery.objects.filter(endpoint=gold_hook)
    assert gold_delivery.event == WebhookEvent.GOLD_CREATED and gold_delivery.payload["gold_label_id"] == gold.pk
    (ready_delivery,) = WebhookDelivery.objects.filter(endpoint=ready)
    assert ready_delivery.payload["content_hash"] == snapshot.content_hash
    assert ready_delivery.payload["url"] == "/api/v1/datasets/d/versions/1/"
    assert WebhookDelivery.objects.count() == 2  # the inactive endpoint gets nothing


def test_a_rolled_back_change_sends_nothing(db, hate, make_gold) -> None:
    endpoint_create(url="http://127.0.0.1:9/", events=["gold_label.created"])
    with pytest.raises(RuntimeError), transaction.atomic():
        make_gold(hate)
        raise RuntimeError("the adjudication failed")
    assert not WebhookDelivery.objects.exists()


def _delivery(url: str, event: str = "snapshot.ready") -> WebhookDelivery:
    endpoint_create(url=url, events=[event])
    (delivery_id,) = webhooks.event_emit(event, {"dataset": "d", "version": 1})
    return WebhookDelivery.objects.get(pk=delivery_id)


def test_successful_attempt_is_signed_and_logged(db) -> None:
    with webhook_receiver(204) as receiver:
        delivery = _delivery(receiver.url)
        assert delivery_attempt(delivery_id=delivery.pk) is None
    (request,) = receiver.requests
    endpoint = WebhookEndpoint.objects.get()
    assert request.path == "/hooks/reviewapp?team=ml"
    assert request.headers["X-Reviewapp-Signature"] == sign(endpoint.secret, request.body)
    assert request.headers["X-Reviewapp-Event"] == "snapshot.ready"
    envelope = json.loads(request.body)
    assert envelope["id"] == request.headers["X-Reviewapp-Delivery"] == str(delivery.event_id)
    assert envelope["data"] == {"dataset": "d", "version": 1} and envelope["event"] == "snapshot.ready"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (DeliveryStatus.SUCCEEDED, 1, 204)
    assert delivery_attempt(delivery_id=delivery.pk) is None and len(receiver.requests) == 1  # idempotent


def test_failed_attempt_backs_off_then_gives_up(db, settings) -> None:
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    with webhook_receiver(500) as receiver:
        delivery = _delivery(receiver.url)
        waits = [delivery_attempt(delivery_id=delivery.pk) for _ in range(4)]
    assert waits == [1, 4, None, None] and len(receiver.requests) == 3
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.FAILED, 3, "HTTP 500")


def test_unreachable_target_is_retried(db) -> None:
    delivery = _delivery("http://127.0.0.1:9/closed-port")
    assert delivery_attempt(delivery_id=delivery.pk) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and "ConnectionRefusedError" in delivery.last_error
    assert delivery.next_attempt_at is not None


def test_target_that_became_private_fails_without_a_request(db, settings) -> None:
    with webhook_receiver(200) as receiver:
        delivery = _delivery(receiver.url)
        settings.WEBHOOK_ALLOW_PRIVATE = False
        assert delivery_attempt(delivery_id=delivery.pk) is None
    assert receiver.requests == []
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and "private or local" in delivery.last_error
