"""REST for external review tools: claim, annotate, renew, release, escalate."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from labeling.models import Annotation, AnnotationSource
from reviewapp.models import ReviewTask, TaskStatus
from tests.factories import ReviewTaskFactory, UserFactory


@pytest.fixture
def reviewer(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="tool-user")
    queue.members.add(user)
    return user


@pytest.fixture
def api(reviewer, make_token) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=reviewer)}")
    return client


def claim(api, queue):  # type: ignore[no-untyped-def]
    return api.post(f"/api/v1/queues/{queue.pk}/claim")


def test_claim_returns_task_with_item_schema_and_lease(api, policy, queue, reviewer) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    response = claim(api, queue)
    assert response.status_code == 200
    body = response.json()
    assert body["item"]["text"] == "you are a clown"
    assert [label["value"] for label in body["policy_version"]["label_schema"]["labels"]] == [
        "violating",
        "not_violating",
    ]
    assert body["lease_expires_at"]
    assert ReviewTask.objects.get(pk=body["id"]).leased_by == reviewer


def test_claim_on_empty_queue_is_204(api, queue) -> None:
    assert claim(api, queue).status_code == 204


def test_annotate_then_retry_is_201_then_200(api, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    task_id = claim(api, queue).json()["id"]
    body = {"submission_id": str(uuid.uuid4()), "labels": ["violating"], "rationale": "insult"}
    first = api.post(f"/api/v1/tasks/{task_id}/annotations", body, format="json")
    again = api.post(f"/api/v1/tasks/{task_id}/annotations", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["created"] and not again.json()["created"]
    assert Annotation.objects.get().source == AnnotationSource.API


def test_annotation_with_unknown_label_is_400(api, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    task_id = claim(api, queue).json()["id"]
    response = api.post(
        f"/api/v1/tasks/{task_id}/annotations", {"submission_id": str(uuid.uuid4()), "labels": ["nope"]}, format="json"
    )
    assert response.status_code == 400 and "Unknown label 'nope'" in response.json()["detail"]


def test_annotation_on_task_held_by_another_is_409(api, policy, queue) -> None:
    from reviewapp.services.claims import task_claim_next

    task = ReviewTaskFactory(policy=policy, queue=queue)
    task_claim_next(reviewer=UserFactory(), queue=queue)
    response = api.post(
        f"/api/v1/tasks/{task.pk}/annotations",
        {"submission_id": str(uuid.uuid4()), "labels": ["violating"]},
        format="json",
    )
    assert response.status_code == 409 and "kept in the audit log" in response.json()["detail"]


def test_renew_release_and_escalate(api, policy, queue) -> None:
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue)
    first = claim(api, queue).json()["id"]
    assert api.post(f"/api/v1/tasks/{first}/lease").status_code == 200
    assert api.post(f"/api/v1/tasks/{first}/release", {"reason": "unclear"}, format="json").status_code == 204
    second = claim(api, queue).json()["id"]
    assert second != first
    assert api.post(f"/api/v1/tasks/{second}/escalate", {"note": "new trend"}, format="json").status_code == 204
    assert ReviewTask.objects.get(pk=second).status == TaskStatus.ESCALATED
    assert api.post(f"/api/v1/tasks/{second}/lease").status_code == 409


def test_non_member_gets_404(make_token, policy, queue) -> None:
    outsider = UserFactory(username="outsider")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=outsider)}")
    assert client.post(f"/api/v1/queues/{queue.pk}/claim").status_code == 404


def test_token_without_person_is_403(make_token, queue) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'])}")
    assert client.post(f"/api/v1/queues/{queue.pk}/claim").status_code == 403


def test_token_without_scope_is_403(make_token, reviewer, queue) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['export:read'], user=reviewer)}")
    assert client.post(f"/api/v1/queues/{queue.pk}/claim").status_code == 403


def test_session_user_needs_csrf(reviewer, queue) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(reviewer)
    assert client.post(f"/api/v1/queues/{queue.pk}/claim").status_code == 403


def test_blind_queue_claim_hides_model(api, policy, queue) -> None:
    queue.blind_review = True
    queue.save()
    ReviewTaskFactory(policy=policy, queue=queue)
    assert claim(api, queue).json()["model"] is None
