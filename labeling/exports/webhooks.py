"""Webhooks: signed notifications of the events in `WebhookEvent` (payloads: `events.py`).

`event_emit` writes one `WebhookDelivery` per subscribed endpoint in the caller's transaction
and enqueues the Celery task after commit, so an event exists exactly when the change that
caused it was committed. The task (`exports.deliver_webhook`) makes one attempt without holding
a transaction, records the outcome, and retries with exponential backoff
(1 s, 4 s, 16 s, … capped at 6 h) up to settings.WEBHOOK_MAX_ATTEMPTS.

Each request is a POST of a JSON body `{"id", "event", "created_at", "data"}` with headers
`X-Reviewapp-Event`, `X-Reviewapp-Delivery` (the event id; receivers deduplicate by it; retries
reuse it) and `X-Reviewapp-Signature: sha256=<hex HMAC-SHA256 of the body with the endpoint's
secret>`. Redirects are not followed.

Targets must be http(s). Unless settings.WEBHOOK_ALLOW_PRIVATE, a target resolving to a
private, loopback, link-local or otherwise non-public address is refused, both when the endpoint
is saved and at every attempt, and the connection goes to the address that was checked (so DNS
cannot change between the check and the request). The address policy itself is shared with the
Label Studio client: `reviewapp.outbound`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import socket
import ssl
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import orjson
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from reviewapp.outbound import UnsafeTarget, resolve_checked

from .models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

MAX_BACKOFF_SECONDS = 6 * 3600
RESPONSE_READ_LIMIT = 64 * 1024
USER_AGENT = "reviewapp-webhooks/1"
# From this many deliveries at once, one task enqueues them from a worker (see events_emit).
FAN_OUT_AT = 10


def check_webhook_url(url: str, *, allow_private: bool | None = None) -> str:
    """Validate a target URL; return the IP address to connect to. Raises UnsafeTarget."""
    allow = settings.WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget("Webhook URLs must be http:// or https:// with a host.")
    if parts.username or parts.password:
        raise UnsafeTarget("Webhook URLs may not carry credentials; use the signing secret.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as error:
        raise UnsafeTarget(f"Cannot resolve {parts.hostname!r}: {error}") from None
    addresses = resolve_checked(
        parts.hostname, port, allow_private=allow, how_to_allow="set REVIEWAPP_WEBHOOK_ALLOW_PRIVATE=1 to allow it"
    )
    return addresses[0]


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def endpoint_create(*, url: str, events: list[str], description: str = "") -> WebhookEndpoint:
    check_webhook_url(url)
    unknown = sorted(set(events) - set(WebhookEvent.values))
    if unknown or not events:
        raise ValidationError(f"events must be some of {', '.join(WebhookEvent.values)}")
    return WebhookEndpoint.objects.create(url=url, events=sorted(set(events)), description=description)


def endpoints_subscribed(event: str) -> list[WebhookEndpoint]:
    """The active endpoints that want `event`; receivers check it before building a payload."""
    return list(WebhookEndpoint.objects.filter(is_active=True, events__contains=[event]))


def event_emit(event: str, payload: dict[str, Any]) -> list[int]:
    """Record one delivery per active endpoint subscribed to `event`; send them after commit."""
    return events_emit(event, [payload])


def events_emit(
    event: str, payloads: list[dict[str, Any]], *, endpoints: list[WebhookEndpoint] | None = None
) -> list[int]:
    """Record one event per payload (its own event id), delivered to every subscribed endpoint.

    Call inside the transaction of the change the events describe: the deliveries commit with it,
    and are enqueued after commit, one task each, or through one fan-out task for a large batch
    (an ingest batch enforcing hundreds of decisions), so the committing request never waits on
    the broker for each delivery.
    """
    endpoints = endpoints_subscribed(event) if endpoints is None else endpoints
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(endpoint=endpoint, event=event, event_id=event_id, payload=payload)
            for event_id, payload in ((uuid.uuid4(), payload) for payload in payloads)
            for endpoint in endpoints
        ]
    )
    ids = [delivery.pk for delivery in deliveries]
    if ids:
        from .tasks import deliver_webhook, deliver_webhooks_fan_out

        if len(ids) < FAN_OUT_AT:
            transaction.on_commit(lambda: [deliver_webhook.delay(pk) for pk in ids])
        else:
            transaction.on_commit(lambda: deliver_webhooks_fan_out.delay(ids))
    return ids


def snapshot_payload(snapshot: Any) -> dict[str, Any]:
    dataset = snapshot.dataset
    return {
        "dataset": dataset.slug,
        "version": snapshot.version,
        "snapshot_id": snapshot.pk,
        "row_count": snapshot.row_count,
        "content_hash": snapshot.content_hash,
        "splits": snapshot.stats.get("splits", {}),
        "split_definition": snapshot.split_definition,
        "url": f"/api/v1/datasets/{dataset.slug}/versions/{snapshot.version}/",
    }


def delivery_body(delivery: WebhookDelivery) -> bytes:
    envelope = {
        "id": str(delivery.event_id),
        "event": delivery.event,
        "created_at": delivery.created_at.isoformat(),
        "data": delivery.payload,
    }
    return orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)


def backoff_seconds(attempts: int) -> int:
    """Delay before attempt `attempts + 1`: 1, 4, 16, 64 s, … at most 6 hours."""
    return int(min(4 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def delivery_attempt(*, delivery_id: int) -> int | None:
    """Make one attempt at a pending delivery; return seconds until the next one, or None when done.

    Holds no transaction or lock during the request; the outcome is written with a conditional
    UPDATE, so a delivery that another attempt already finished is left alone.
    """
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != DeliveryStatus.PENDING:
        return None
    body = delivery_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Reviewapp-Event": delivery.event,
        "X-Reviewapp-Delivery": str(delivery.event_id),
        "X-Reviewapp-Signature": sign(delivery.endpoint.secret, body),
    }
    status_code, error, permanent = None, "", False
    try:
        status_code = _post(delivery.endpoint.url, body, headers)
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except UnsafeTarget as refused:
        error, permanent = " ".join(refused.messages), True
    except (OSError, http.client.HTTPException) as failure:
        error = f"{type(failure).__name__}: {failure}"[:2000]
    attempts = delivery.attempts + 1
    now = timezone.now()
    update: dict[str, Any] = {"attempts": attempts, "last_status_code": status_code, "last_error": error}
    countdown = None
    if not error:
        update.update(status=DeliveryStatus.SUCCEEDED, delivered_at=now, next_attempt_at=None)
    elif permanent or attempts >= settings.WEBHOOK_MAX_ATTEMPTS or not delivery.endpoint.is_active:
        update.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        countdown = backoff_seconds(attempts)
        update["next_attempt_at"] = now + timedelta(seconds=countdown)
    WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**update)
    return countdown


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to an address checked beforehand, while sending the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    address = check_webhook_url(url)
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    assert parts.hostname is not None  # checked above
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    conn = connection_class(parts.hostname, port, address, timeout)
    try:
        conn.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        response = conn.getresponse()
        response.read(RESPONSE_READ_LIMIT)
        return response.status
    finally:
        conn.close()
