"""Fixtures for the Label Studio tests: a real server (see server.py) and its users."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from label_studio_sdk import LabelStudio

from labeling.labelstudio.models import Connection
from labeling.labelstudio.services import connection_create
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem, ModelDecision, ReviewTask
from tests.factories import PolicyFactory, QueueFactory, ReviewTaskFactory
from tests.labelstudio.server import LabelStudioServer, running_label_studio


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory) -> Iterator[LabelStudioServer]:  # type: ignore[no-untyped-def]
    with running_label_studio(tmp_path_factory.mktemp("label-studio")) as server:
        yield server


@dataclass(frozen=True)
class LSUser:
    id: int
    email: str
    client: LabelStudio


@pytest.fixture(scope="session")
def ls_admin(label_studio) -> LSUser:  # type: ignore[no-untyped-def]
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    me = client.users.whoami()
    return LSUser(me.id, me.email, client)


@pytest.fixture(scope="session")
def ls_annotator(label_studio) -> LSUser:  # type: ignore[no-untyped-def]
    """A second Label Studio user with a token of their own, made as a person would: sign up."""
    email, password = "annotator@example.com", "annotator-password-1"
    with httpx.Client(base_url=label_studio.url, follow_redirects=False, timeout=30) as web:
        web.get("/user/signup/")
        csrf = web.cookies["csrftoken"]
        form = {"csrfmiddlewaretoken": csrf, "email": email, "password": password, "allow_newsletters": "false"}
        response = web.post("/user/signup/", data=form, headers={"Referer": f"{label_studio.url}/user/signup/"})
        assert response.status_code == 302, response.text[:500]
        token = web.get("/api/current-user/token").json()["token"]
    client = LabelStudio(base_url=label_studio.url, api_key=token)
    return LSUser(client.users.whoami().id, email, client)


@pytest.fixture
def ls_policy(db):  # type: ignore[no-untyped-def]
    return PolicyFactory(key="harassment", name="Harassment")


@pytest.fixture
def ls_queue(db):  # type: ignore[no-untyped-def]
    return QueueFactory(slug="vendor-overflow", required_annotations=2, max_annotations=2)


@pytest.fixture
def make_connection(label_studio, ls_policy, ls_queue):  # type: ignore[no-untyped-def]
    def make(**kwargs) -> Connection:  # type: ignore[no-untyped-def]
        values = {
            "name": f"ls-{Connection.objects.count() + 1}",
            "base_url": label_studio.url,
            "token": label_studio.token,
            "policy": ls_policy,
            "queue": ls_queue,
            "actor": SYSTEM,
        }
        values.update(kwargs)
        return connection_create(**values)

    return make


@pytest.fixture
def make_review_task(ls_policy, ls_queue):  # type: ignore[no-untyped-def]
    """An open task with the model's decision, as routing makes it."""

    def make(text: str, *, predicted: str = "violating", score: float = 0.64, **kwargs) -> ReviewTask:  # type: ignore[no-untyped-def]
        item = ContentItem.objects.create(
            source="comments",
            external_id=f"c-{ContentItem.objects.count() + 1}",
            text=text,
            context=[{"author": "alice", "text": "what did you say?"}],
        )
        decision = ModelDecision.objects.create(
            item=item,
            policy=ls_policy,
            policy_version=ls_policy.current_version(),
            model_name="tox-bert",
            model_version="2026.11",
            score=score,
            predicted_label=predicted,
            routing_outcome="review",
            sampling_propensity=1.0,
        )
        values = {"item": item, "policy": ls_policy, "queue": ls_queue, "decision": decision}
        values.update(kwargs)
        return ReviewTaskFactory(**values)

    return make
