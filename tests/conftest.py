"""Shared fixtures. Tests run against the real PostgreSQL and Redis that `make test` provides.

Tiers (pyproject.toml declares the markers; `make test-fast` leaves out all of them, `make test`
only `soak`): the folder gives `browser`, `labelstudio` and `faults` (added below, so moving a
test between tiers is moving its file; a test elsewhere that needs one of those servers carries the
marker itself, e.g. tests/exports/test_label_studio_import.py); `worker` and `slow` are marked in
the test files, on the test when a file mixes fast and slow tests. Locally, `--reuse-db` skips
re-creating the test database (never on CI: a stale schema would hide a migration bug).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from reviewapp.audit import SYSTEM
from reviewapp.services.tokens import token_create
from tests.factories import PolicyFactory, QueueFactory, RoutingRuleFactory
from tools.data import FILES

TESTS_ROOT = Path(__file__).resolve().parent
FOLDER_TIERS = ("browser", "labelstudio", "faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = item.path.relative_to(TESTS_ROOT).parts[0] if item.path.is_relative_to(TESTS_ROOT) else ""
        if folder in FOLDER_TIERS:
            item.add_marker(folder)


# --- the public datasets (Toxic Spans, ConvAbuse): one place knows where they are -------------


def dataset_dir(name: str) -> Path:
    """REVIEWAPP_DATA_DIR/<name> when every file tools/data.py pins for it is there; otherwise the
    test skips, naming the command that provides the data. With ../shared beside the clone (CI)
    nothing skips."""
    folder = Path(settings.REVIEWAPP_DATA_DIR) / name
    missing = [file.name for file in FILES if file.dataset == name and not (folder / file.name).is_file()]
    if missing:
        pytest.skip(
            f"{name} data not found in {folder} (missing {', '.join(missing)}): run `make data`, "
            f"or `REVIEWAPP_DATA_DIR=/path/to/data make test` with {name}/ in that folder"
        )
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """settings.REVIEWAPP_DATA_DIR: where the public datasets are (they may be absent)."""
    return Path(settings.REVIEWAPP_DATA_DIR)


@pytest.fixture(scope="session")
def toxic_spans_dir() -> Path:
    return dataset_dir("toxic-spans")


@pytest.fixture(scope="session")
def convabuse_dir() -> Path:
    return dataset_dir("convabuse")


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
