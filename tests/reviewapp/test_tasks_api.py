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


# An answer is accepted only from the reviewer holding the task's live lease, or late from the
# one who held the most recent lease while nobody holds it; a task id alone is not enough.


def annotate(api, task_id, label="violating"):  # type: ignore[no-untyped-def]
    body = {"submission_id": str(uuid.uuid4()), "labels": [label]}
    return api.post(f"/api/v1/tasks/{task_id}/annotations", body, format="json")


def api_for(user, make_token) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=user)}")
    return client


def expire_lease(task_id: int) -> None:
    from datetime import timedelta

    from django.db.models.functions import Now

    ReviewTask.objects.filter(pk=task_id).update(lease_expires_at=Now() - timedelta(seconds=1))


def test_annotating_a_task_never_served_to_you_is_409_and_kept_in_the_audit_log(api, policy, queue) -> None:
    from reviewapp.models import AuditEvent

    task = ReviewTaskFactory(policy=policy, queue=queue)
    response = annotate(api, task.pk)
    assert response.status_code == 409 and "not assigned to you" in response.json()["detail"]
    assert not Annotation.objects.exists()
    assert AuditEvent.objects.filter(action="annotation.rejected", object_id=str(task.pk)).exists()


def test_annotating_a_task_you_skipped_is_409(api, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    task_id = claim(api, queue).json()["id"]
    assert api.post(f"/api/v1/tasks/{task_id}/release", {"reason": "not my language"}, format="json").status_code == 204
    # The skip ended the lease and the reviewer held it last: without the skip this would be a late answer.
    response = annotate(api, task_id)
    assert response.status_code == 409 and "You skipped this item" in response.json()["detail"]
    assert not Annotation.objects.exists()


def test_two_reviewers_cannot_complete_a_task_by_id_and_make_its_gold(
    api, policy, queue, reviewer, make_token, settings
) -> None:
    from labeling.models import GoldLabel

    settings.UNDO_WINDOW_SECONDS = 0  # consensus would be taken inline, in the second answer's request
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue)
    other = UserFactory()
    queue.members.add(other)
    responses = [annotate(api, task.pk), annotate(api_for(other, make_token), task.pk)]
    assert [r.status_code for r in responses] == [409, 409]
    task.refresh_from_db()
    assert (task.status, task.annotation_count) == (TaskStatus.OPEN, 0)
    assert not GoldLabel.objects.exists()


def test_a_honeypot_cannot_be_answered_without_being_served(api, policy, queue) -> None:
    honeypot = ReviewTaskFactory(policy=policy, queue=queue, reason="honeypot")
    assert annotate(api, honeypot.pk).status_code == 409
    assert not Annotation.objects.exists()


def test_the_graphic_cap_cannot_be_bypassed_by_annotating_by_id(api, policy, queue) -> None:
    from tests.factories import ContentItemFactory

    queue.graphic_daily_cap = 0  # no graphic item may be served to anyone today
    queue.save()
    item = ContentItemFactory(modality="image", media_urls=["https://media.trusted.example/b.jpg"])
    graphic = ReviewTaskFactory(policy=policy, queue=queue, item=item)
    assert claim(api, queue).status_code == 204
    assert annotate(api, graphic.pk).status_code == 409
    assert not Annotation.objects.exists()


def test_a_late_answer_from_the_last_lease_holder_is_accepted_when_nobody_holds_the_task(
    api, policy, queue, reviewer
) -> None:
    from reviewapp.services.leases import task_leases_expire

    ReviewTaskFactory(policy=policy, queue=queue)
    task_id = claim(api, queue).json()["id"]
    expire_lease(task_id)
    assert task_leases_expire() == 1  # the sweep has cleared the lease too
    response = annotate(api, task_id)
    assert response.status_code == 201 and response.json()["late"] is True
    assert Annotation.objects.get().reviewer == reviewer


def test_a_late_answer_is_refused_once_another_reviewer_held_the_task_after_you(api, policy, queue, make_token) -> None:
    from reviewapp.services.claims import task_claim_next, task_release

    ReviewTaskFactory(policy=policy, queue=queue)
    task_id = claim(api, queue).json()["id"]
    expire_lease(task_id)
    other = UserFactory()
    queue.members.add(other)
    assert task_claim_next(reviewer=other, queue=queue).task.pk == task_id
    task_release(task_id=task_id, reviewer=other, reason="not my language")
    response = annotate(api, task_id)
    assert response.status_code == 409 and "another reviewer had it after you" in response.json()["detail"]


def test_a_retry_of_a_recorded_answer_still_returns_it_after_the_lease_ended(api, policy, queue) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    task_id = claim(api, queue).json()["id"]
    body = {"submission_id": str(uuid.uuid4()), "labels": ["violating"]}
    first = api.post(f"/api/v1/tasks/{task_id}/annotations", body, format="json")
    again = api.post(f"/api/v1/tasks/{task_id}/annotations", body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
