"""Shared fixtures. Tests run against the real PostgreSQL and Redis that `make test` provides."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from reviewapp.audit import SYSTEM
from reviewapp.services.tokens import token_create
from tests.factories import PolicyFactory, QueueFactory, RoutingRuleFactory


@pytest.fixture
def policy(db):  # type: ignore[no-untyped-def]
    return PolicyFactory(key="harassment", severity_weight=2.0)


@pytest.fixture
def queue(db):  # type: ignore[no-untyped-def]
    return QueueFactory(slug="harassment-review", sla_minutes=120)


@pytest.fixture
def audit_queue(db):  # type: ignore[no-untyped-def]
    return QueueFactory(slug="harassment-audit", kind="audit", sla_minutes=1440)


@pytest.fixture
def routing_rule(policy, queue, audit_queue):  # type: ignore[no-untyped-def]
    return RoutingRuleFactory(policy=policy, queue=queue, audit_queue=audit_queue, auto_clear=0.2, auto_action=0.9)


@pytest.fixture
def make_token(db) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    counter = iter(range(1_000_000))

    def make(scopes: list[str], **kwargs) -> str:  # type: ignore[no-untyped-def]
        _, secret = token_create(name=f"test-token-{next(counter)}", scopes=scopes, actor=SYSTEM, **kwargs)
        return secret

    return make


@pytest.fixture
def ingest_client(make_token) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['decisions:write'])}")
    return client


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One real worker process for the session; tests using it need `transactional_db`."""
    from tests.worker import celery_worker

    log = tmp_path_factory.mktemp("celery") / "worker.log"
    with django_db_blocker.unblock(), celery_worker(log) as process:
        yield process
