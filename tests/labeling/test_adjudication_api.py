"""Adjudication over REST: a lead lists, reads, decides and sends back with a personal token
(scope `adjudications:write`); reviewers and tokens without the scope are refused; a sent-back
reviewer's claim carries the lead's note."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from labeling.models import Adjudication, AdjudicationStatus, Annotation, GoldLabel, GoldSource
from labeling.services.annotations import annotation_submit
from reviewapp.models import AuditEvent, TaskAssignment, TaskStatus
from reviewapp.services.claims import task_claim_next, task_escalate
from tests.factories import ContentItemFactory, PolicyFactory, ReviewTaskFactory, UserFactory
from tests.labeling.test_consensus import store_reliabilities

SCOPE = "adjudications:write"
HOSTILE = '<img src=x onerror=alert(1)> <script>alert(2)</script> \u202eevil "quoted" \\ \'; DROP TABLE x;--'


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


@pytest.fixture
def lead(db):  # type: ignore[no-untyped-def]
    user = UserFactory(username="lead")
    user.groups.add(Group.objects.get_or_create(name="policy_lead")[0])
    return user


def api(secret: str) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


def answer(task, reviewer, labels, rationale=""):  # type: ignore[no-untyped-def]
    claim = task_claim_next(reviewer=reviewer, queue=task.queue)
    assert claim is not None and claim.task.pk == task.pk
    return annotation_submit(
        task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels, rationale=rationale
    )


@pytest.fixture
def disputed(policy, queue):  # type: ignore[no-untyped-def]
    """Two reviewers disagreed (one with a hostile rationale); the task waits for a lead."""
    queue.required_annotations = 2
    queue.save()
    task = ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(external_id="c-9"))
    first, second = UserFactory(username="ana"), UserFactory(username="ben")
    queue.members.add(first, second)
    answer(task, first, ["violating"], rationale=HOSTILE)
    answer(task, second, ["not_violating"])
    return Adjudication.objects.get(task=task), (first, second)


def test_a_lead_lists_and_reads_open_adjudications_with_the_answers(disputed, lead, make_token) -> None:
    adjudication, _ = disputed
    client = api(make_token([SCOPE], user=lead))

    listed = client.get("/api/v1/adjudications")
    one = client.get(f"/api/v1/adjudications/{adjudication.pk}")

    assert listed.status_code == 200 and one.status_code == 200
    assert [a["id"] for a in listed.json()["results"]] == [adjudication.pk]
    body = one.json()
    assert body == listed.json()["results"][0]
    assert (body["task_id"], body["item_id"], body["policy"], body["reason"], body["status"]) == (
        adjudication.task_id,
        adjudication.task.item_id,
        "harassment",
        "disagreement",
        "open",
    )
    assert [(a["reviewer"], a["labels"], a["withdrawn"]) for a in body["answers"]] == [
        ("ana", ["violating"], False),
        ("ben", ["not_violating"], False),
    ]
    assert body["answers"][0]["rationale"] == HOSTILE  # data, as typed
    assert set(body["answers"][0]) == {
        "reviewer",
        "source",
        "labels",
        "severity",
        "rationale",
        "handle_time_ms",
        "late",
        "policy_version",
        "withdrawn",
        "estimated_accuracy",
    }
    assert body["answers"][0]["estimated_accuracy"] is None  # no crowd model fitted


def test_the_list_filters_by_policy_and_status_and_pages(disputed, lead, make_token, queue) -> None:
    adjudication, (first, _) = disputed
    other = PolicyFactory(key="spam")
    for _ in range(3):
        task = ReviewTaskFactory(policy=other, queue=queue)
        task_claim_next(reviewer=first, queue=queue)
        task_escalate(task_id=task.pk, reviewer=first, note="unsure")
    client = api(make_token([SCOPE], user=lead))

    harassment = client.get("/api/v1/adjudications", {"policy": "harassment"}).json()
    first_page = client.get("/api/v1/adjudications", {"page_size": 2}).json()
    second_page = client.get(first_page["next"]).json()
    decided = client.get("/api/v1/adjudications", {"status": "decided"}).json()
    bad = client.get("/api/v1/adjudications", {"status": "closed"})

    assert [a["id"] for a in harassment["results"]] == [adjudication.pk]
    assert len(first_page["results"]) == 2 and len(second_page["results"]) == 2
    seen = [a["id"] for a in first_page["results"] + second_page["results"]]
    assert seen == sorted(Adjudication.objects.values_list("pk", flat=True)) and second_page["next"] is None
    assert decided["results"] == []
    assert bad.status_code == 400 and "status" in bad.json()["errors"]


def test_a_lead_decides_through_the_api(disputed, lead, make_token) -> None:
    adjudication, _ = disputed
    client = api(make_token([SCOPE], user=lead))

    response = client.post(
        f"/api/v1/adjudications/{adjudication.pk}/decide",
        {"labels": ["violating"], "severity": "high", "note": HOSTILE},
        content_type="application/json",
    )

    assert response.status_code == 201, response.content
    gold = GoldLabel.objects.get()
    assert response.json() == {
        "id": gold.pk,
        "version": 1,
        "labels": ["violating"],
        "severity": "high",
        "source": GoldSource.ADJUDICATION,
        "policy_version": 1,
    }
    assert (gold.adjudicator_id, gold.note) == (lead.pk, HOSTILE)
    adjudication.refresh_from_db()
    assert (adjudication.status, adjudication.decided_by_id, adjudication.gold_id) == ("decided", lead.pk, gold.pk)
    assert AuditEvent.objects.get(action="adjudication.decided").actor_id == lead.pk
    assert client.get("/api/v1/adjudications").json()["results"] == []
    shown = client.get(f"/api/v1/adjudications/{adjudication.pk}").json()
    assert (shown["status"], shown["decided_by"], shown["gold_id"]) == ("decided", "lead", gold.pk)


def test_a_second_decide_is_refused_clearly(disputed, lead, make_token) -> None:
    adjudication, _ = disputed
    client = api(make_token([SCOPE], user=lead))
    url = f"/api/v1/adjudications/{adjudication.pk}/decide"
    assert client.post(url, {"labels": ["violating"]}, content_type="application/json").status_code == 201

    again = client.post(url, {"labels": ["not_violating"]}, content_type="application/json")
    send_back = client.post(
        f"/api/v1/adjudications/{adjudication.pk}/send-back", {"note": "look"}, content_type="application/json"
    )

    assert again.status_code == 409 and send_back.status_code == 409
    assert again.json() == {"detail": "This item was already decided."}
    assert GoldLabel.objects.count() == 1 and GoldLabel.objects.get().labels == ["violating"]


def test_bad_input_is_a_400_that_records_nothing(disputed, lead, make_token) -> None:
    adjudication, _ = disputed
    client = api(make_token([SCOPE], user=lead))
    decide = f"/api/v1/adjudications/{adjudication.pk}/decide"

    unknown = client.post(decide, {"labels": [HOSTILE]}, content_type="application/json")
    severity = client.post(decide, {"labels": ["violating"], "severity": "huge"}, content_type="application/json")
    no_labels = client.post(decide, {"labels": []}, content_type="application/json")
    blank_note = client.post(
        f"/api/v1/adjudications/{adjudication.pk}/send-back", {"note": "   "}, content_type="application/json"
    )
    missing = client.post(
        "/api/v1/adjudications/999999/decide", {"labels": ["violating"]}, content_type="application/json"
    )

    assert [r.status_code for r in (unknown, severity, no_labels, blank_note)] == [400, 400, 400, 400]
    assert unknown.json()["detail"].startswith("Unknown label '<img src=x onerror=alert(1)> <script>")
    assert blank_note.json()["errors"] == {"note": ["This field may not be blank."]}
    assert missing.status_code == 404
    assert not GoldLabel.objects.exists()
    assert Adjudication.objects.get(pk=adjudication.pk).status == AdjudicationStatus.OPEN


def test_a_lead_sends_back_and_the_reviewers_claim_carries_the_note(disputed, lead, make_token) -> None:
    adjudication, (first, _) = disputed
    client = api(make_token([SCOPE], user=lead))

    response = client.post(
        f"/api/v1/adjudications/{adjudication.pk}/send-back", {"note": HOSTILE}, content_type="application/json"
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"task_id": adjudication.task_id, "reviewers": ["ana", "ben"]}
    task = adjudication.task
    task.refresh_from_db()
    assert (task.status, task.assigned) == (TaskStatus.OPEN, True)
    assert Annotation.objects.filter(task=task, retracted_at__isnull=True).count() == 0
    assert set(TaskAssignment.objects.filter(task=task).values_list("reviewer__username", flat=True)) == {"ana", "ben"}
    shown = client.get(f"/api/v1/adjudications/{adjudication.pk}").json()
    assert shown["status"] == "sent_back" and all(a["withdrawn"] for a in shown["answers"])
    assert shown["note"].endswith(f"Lead: {HOSTILE}")

    # The reviewer's own token: the claim carries the lead's note, as data.
    claim = api(make_token(["tasks:write"], user=first)).post(f"/api/v1/queues/{task.queue_id}/claim")
    assert claim.status_code == 200, claim.content
    notes = claim.json()["assignment_notes"]
    assert [(n["reason"], n["note"]) for n in notes] == [("sent_back", HOSTILE)] and notes[0]["created_at"]


def test_an_unreserved_claim_has_no_assignment_notes(policy, queue, make_token) -> None:
    reviewer = UserFactory()
    queue.members.add(reviewer)
    ReviewTaskFactory(policy=policy, queue=queue)
    claim = api(make_token(["tasks:write"], user=reviewer)).post(f"/api/v1/queues/{queue.pk}/claim")
    assert claim.status_code == 200 and claim.json()["assignment_notes"] == []


@pytest.mark.parametrize("who", ["reviewer_token", "lead_without_scope", "service_token", "reviewer_session"])
def test_reviewers_and_tokens_without_the_scope_get_403(disputed, lead, make_token, who) -> None:
    adjudication, (first, _) = disputed
    if who == "reviewer_token":
        client = api(make_token([SCOPE, "tasks:write"], user=first))
    elif who == "lead_without_scope":
        client = api(make_token(["tasks:write", "policies:write"], user=lead))
    elif who == "service_token":
        client = api(make_token([SCOPE]))
    else:
        client = Client()
        client.force_login(first)
    base = f"/api/v1/adjudications/{adjudication.pk}"

    responses = [
        client.get("/api/v1/adjudications"),
        client.get(base),
        client.post(f"{base}/decide", {"labels": ["violating"]}, content_type="application/json"),
        client.post(f"{base}/send-back", {"note": "look"}, content_type="application/json"),
    ]

    assert [r.status_code for r in responses] == [403] * 4
    if who == "lead_without_scope":
        assert responses[0].json()["detail"] == f"This token lacks the '{SCOPE}' scope."
    assert Adjudication.objects.get(pk=adjudication.pk).status == AdjudicationStatus.OPEN


def test_a_lead_session_may_decide_with_the_csrf_token(disputed, lead) -> None:
    adjudication, _ = disputed
    client = Client()
    client.force_login(lead)
    response = client.post(
        f"/api/v1/adjudications/{adjudication.pk}/decide",
        {"labels": ["not_violating"]},
        content_type="application/json",
    )
    assert response.status_code == 201 and response.json()["labels"] == ["not_violating"]


def test_answers_carry_the_estimated_accuracy_in_force_as_on_the_lead_page(disputed, lead, make_token, policy) -> None:
    adjudication, (first, second) = disputed
    store_reliabilities(policy, [first, second, UserFactory()], passed=True)
    client = api(make_token([SCOPE], user=lead))

    listed = client.get("/api/v1/adjudications").json()["results"][0]
    one = client.get(f"/api/v1/adjudications/{adjudication.pk}").json()

    assert [a["estimated_accuracy"] for a in one["answers"]] == [0.98, 0.6]
    assert listed == one
