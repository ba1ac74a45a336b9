"""Fixtures for the dataset export tests: gold labels made the production way (`gold_record`)."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import GoldLabel, Policy
from labeling.services.gold import gold_record
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem, ServiceToken
from tests.factories import PolicyFactory, QueueFactory, ReviewTaskFactory, UserFactory

# The Celery worker is a separate process, started by a session fixture after collection, that
# reads its settings from the environment it inherits: let it deliver webhooks to the tests'
# loopback receiver, and write export files where the worker tests look for them.
os.environ.setdefault("REVIEWAPP_WEBHOOK_ALLOW_PRIVATE", "1")
WORKER_EXPORT_DIR = Path(tempfile.gettempdir()) / f"reviewapp-test-exports-{os.getpid()}"
os.environ.setdefault("REVIEWAPP_EXPORT_DIR", str(WORKER_EXPORT_DIR))

_external_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _export_dir(request, settings, tmp_path):  # type: ignore[no-untyped-def]
    """Export files go to the test's own folder; worker tests share the worker's folder."""
    uses_worker = "celery_worker_process" in request.fixturenames
    settings.EXPORT_DIR = Path(os.environ["REVIEWAPP_EXPORT_DIR"]) if uses_worker else tmp_path / "exports"


@pytest.fixture(scope="session", autouse=True)
def _remove_worker_export_dir():  # type: ignore[no-untyped-def]
    yield
    shutil.rmtree(WORKER_EXPORT_DIR, ignore_errors=True)


@pytest.fixture
def hate(db) -> Policy:  # type: ignore[no-untyped-def]
    return PolicyFactory(key="hate", name="Hate")  # type: ignore[return-value]


@pytest.fixture
def spam(db) -> Policy:  # type: ignore[no-untyped-def]
    return PolicyFactory(key="spam", name="Spam")  # type: ignore[return-value]


@pytest.fixture
def make_gold(db) -> Callable[..., GoldLabel]:  # type: ignore[no-untyped-def]
    """Record a gold label for a new item (or for `item`), the way adjudication and consensus do."""
    queue = QueueFactory(slug="gold-tests")

    def make(
        policy: Policy,
        labels: list[str] | None = None,
        *,
        item: ContentItem | None = None,
        text: str = "you are a clown",
        language: str = "en",
        metadata: dict[str, Any] | None = None,
        source: str = "consensus",
        route: str | None = None,
        propensity: float = 1.0,
        adjudicator: Any = None,
        **item_fields: Any,
    ) -> GoldLabel:
        if item is None:
            fields = {"source": "comments", "external_id": f"c-{next(_external_ids)}", **item_fields}
            item = ContentItem.objects.create(text=text, metadata={"language": language, **(metadata or {})}, **fields)
        task = None
        if route:
            task = ReviewTaskFactory(
                item=item, policy=policy, queue=queue, reason=route, sampling_propensity=propensity
            )
        return gold_record(
            item_id=item.pk,
            policy_version=policy.current_version(),  # type: ignore[arg-type]
            labels=labels or ["violating"],
            source=source,
            actor=SYSTEM,
            task=task,  # type: ignore[arg-type]
            adjudicator=adjudicator,
        )

    return make


def export_token(*scopes: str) -> str:
    """A service token with the given scopes.

    Made directly rather than with `token_create`, which accepts only the scopes listed in
    `ServiceToken.SCOPES` (`export:write` is not there yet).
    """
    secret = ServiceToken.new_secret()
    ServiceToken.objects.create(
        name=f"export-test-{ServiceToken.objects.count() + 1}-{timezone.now().timestamp()}",
        prefix=secret[:8],
        key_hash=ServiceToken.hash_secret(secret),
        scopes=sorted(scopes),
    )
    return secret


@pytest.fixture
def api(db) -> APIClient:  # type: ignore[no-untyped-def]
    """An API client whose token may read and write datasets."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {export_token('export:read', 'export:write')}")
    return client


@pytest.fixture
def reader(db) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {export_token('export:read')}")
    return client


@pytest.fixture
def lead(db):  # type: ignore[no-untyped-def]
    user = UserFactory(username="lead")
    user.groups.add(  # type: ignore[attr-defined]
        Group.objects.get_or_create(name="policy_lead")[0]
    )
    return user


@pytest.fixture
def lead_client(lead) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(lead)
    return client


def body(response: Any) -> bytes:
    """All bytes of a (streaming or plain) response."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content
