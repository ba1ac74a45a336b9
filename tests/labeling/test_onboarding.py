"""Onboarding sets: drawn from people's gold, answered apart from live work, scored, retried."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from labeling.models import Annotation, GoldLabel, HoneypotCheck, OnboardingAnswer
from labeling.services.annotations import annotation_submit
from labeling.services.gold import gold_record
from labeling.services.onboarding import (
    OnboardingRefused,
    onboarding_answer,
    onboarding_next,
    onboarding_pool,
    onboarding_review,
    onboarding_start,
)
from reviewapp.audit import SYSTEM, Actor
from reviewapp.models import AuditEvent
from reviewapp.services.claims import task_claim_next
from reviewapp.services.standing import queue_standing_for, queue_standing_pause, queue_standing_qualify
from tests.factories import ContentItemFactory, ReviewTaskFactory, UserFactory

SECRET = "reference-note-never-shown"


@pytest.fixture
def reviewer(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="newcomer")
    queue.members.add(user)
    return user


@pytest.fixture
def onboarding_queue(policy, queue):  # type: ignore[no-untyped-def]
    queue.onboarding_size = 2
    queue.onboarding_pass_mark = 1.0
    queue.save()
    ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(text="live work"))
    return queue


def make_gold(policy, labels, *, source="adjudication", text="an item"):  # type: ignore[no-untyped-def]
    item = ContentItemFactory(text=text, metadata={"source_label": labels[0]})
    return gold_record(
        item_id=item.pk,
        policy_version=policy.current_version(),
        labels=labels,
        source=source,
        actor=SYSTEM,
        note=SECRET,
    )


@pytest.fixture
def golds(policy):  # type: ignore[no-untyped-def]
    return [
        make_gold(policy, [label], text=f"gold item {n}") for n, label in enumerate(["violating", "not_violating"] * 2)
    ]


def answer_all(attempt, reviewer, *, right: bool):  # type: ignore[no-untyped-def]
    for gold_id in attempt.gold_ids:
        gold = GoldLabel.objects.get(pk=gold_id)
        wrong = "not_violating" if gold.labels == ["violating"] else "violating"
        onboarding_answer(
            attempt_id=attempt.pk, reviewer=reviewer, gold_id=gold_id, labels=gold.labels if right else [wrong]
        )
    attempt.refresh_from_db()
    return attempt


def test_the_pool_is_current_people_gold_of_the_queues_policies_the_reviewer_never_annotated(
    policy, onboarding_queue, reviewer, golds, settings
) -> None:
    settings.UNDO_WINDOW_SECONDS = 0
    honeypot_only = make_gold(policy, ["violating"], source="honeypot")
    corrected = make_gold(policy, ["violating"])
    newer = gold_record(
        item_id=corrected.item_id,
        policy_version=policy.current_version(),
        labels=["not_violating"],
        source="appeal",
        actor=SYSTEM,
    )
    answered = golds[0]
    task = ReviewTaskFactory(policy=policy, queue=onboarding_queue, item_id=answered.item_id, priority=9)
    make_gold(ReviewTaskFactory().policy, ["violating"])  # another queue's policy
    queue_standing_qualify(queue=onboarding_queue, reviewer=reviewer, actor=SYSTEM)
    assert task_claim_next(reviewer=reviewer, queue=onboarding_queue).task.pk == task.pk
    annotation_submit(task_id=task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["violating"])
    pool = {gold.pk for gold in onboarding_pool(queue=onboarding_queue, reviewer=reviewer)}
    assert pool == {golds[1].pk, golds[2].pk, golds[3].pk, newer.pk}
    assert honeypot_only.pk not in pool and corrected.pk not in pool


def test_an_attempt_is_a_fixed_set_and_starting_twice_returns_it(onboarding_queue, reviewer, golds) -> None:
    attempt = onboarding_start(queue=onboarding_queue, reviewer=reviewer)
    assert attempt.gold_ids == [golds[0].pk, golds[1].pk] and attempt.pass_mark == 1.0
    assert onboarding_start(queue=onboarding_queue, reviewer=reviewer).pk == attempt.pk
    assert AuditEvent.objects.filter(action="onboarding.started").count() == 1


def test_onboarding_is_refused_when_live_paused_by_a_lead_or_without_gold(queue, onboarding_queue, reviewer) -> None:
    with pytest.raises(OnboardingRefused, match="no gold items"):
        onboarding_start(queue=onboarding_queue, reviewer=reviewer)
    queue_standing_pause(queue=onboarding_queue, reviewer=reviewer, reason="lead", actor=SYSTEM)
    with pytest.raises(OnboardingRefused, match="only a lead"):
        onboarding_start(queue=onboarding_queue, reviewer=reviewer)
    onboarding_queue.onboarding_size = 0
    onboarding_queue.save()
    other = UserFactory(username="veteran")
    with pytest.raises(OnboardingRefused, match="already"):
        onboarding_start(queue=onboarding_queue, reviewer=other)


def test_answers_never_become_annotations_gold_or_honeypot_checks(onboarding_queue, reviewer, golds) -> None:
    counts = (Annotation.objects.count(), GoldLabel.objects.count(), HoneypotCheck.objects.count())
    attempt = answer_all(onboarding_start(queue=onboarding_queue, reviewer=reviewer), reviewer, right=True)
    assert attempt.passed and OnboardingAnswer.objects.filter(attempt=attempt).count() == 2
    assert (Annotation.objects.count(), GoldLabel.objects.count(), HoneypotCheck.objects.count()) == counts


def test_a_failed_attempt_shows_why_and_a_retry_serves_items_not_shown_before(
    onboarding_queue, reviewer, golds
) -> None:
    first = answer_all(onboarding_start(queue=onboarding_queue, reviewer=reviewer), reviewer, right=False)
    assert (first.passed, first.n_correct) == (False, 0)
    assert not queue_standing_for(queue=onboarding_queue, reviewer=reviewer).live
    review = onboarding_review(attempt=first)
    assert [(r.answer, r.reference, r.correct) for r in review] == [
        (["not_violating"], ["violating"], False),
        (["violating"], ["not_violating"], False),
    ]
    second = onboarding_start(queue=onboarding_queue, reviewer=reviewer)
    assert second.gold_ids == [golds[2].pk, golds[3].pk]
    answer_all(second, reviewer, right=True)
    assert queue_standing_for(queue=onboarding_queue, reviewer=reviewer).live
    assert task_claim_next(reviewer=reviewer, queue=onboarding_queue) is not None
    finished = AuditEvent.objects.filter(action="onboarding.finished").order_by("pk")
    assert [e.after["passed"] for e in finished] == [False, True]


def test_references_stay_hidden_until_the_last_answer(onboarding_queue, reviewer, golds) -> None:
    attempt = onboarding_start(queue=onboarding_queue, reviewer=reviewer)
    with pytest.raises(OnboardingRefused):
        onboarding_review(attempt=attempt)
    client = Client()
    client.force_login(reviewer)
    html = client.get(f"/queues/{onboarding_queue.pk}/onboarding/").content.decode()
    assert "gold item 0" in html and 'name="labels"' in html
    for hidden in (SECRET, "source_label", "onboarding-review", "Reference"):
        assert hidden not in html, hidden
    api = APIClient()
    api.force_authenticate(reviewer)
    body = api.get(f"/api/v1/queues/{onboarding_queue.pk}/onboarding").json()
    assert body["next_item"]["text"] == "gold item 0" and body["last_result"] is None
    assert "violating" not in str({k: v for k, v in body["next_item"].items() if k != "labels"})


def test_a_wrong_label_or_an_item_outside_the_set_is_refused_and_answers_are_idempotent(
    policy, onboarding_queue, reviewer, golds
) -> None:
    attempt = onboarding_start(queue=onboarding_queue, reviewer=reviewer)
    with pytest.raises(ValidationError):
        onboarding_answer(attempt_id=attempt.pk, reviewer=reviewer, gold_id=golds[0].pk, labels=["spam"])
    with pytest.raises(OnboardingRefused):
        onboarding_answer(attempt_id=attempt.pk, reviewer=reviewer, gold_id=golds[3].pk, labels=["violating"])
    onboarding_answer(attempt_id=attempt.pk, reviewer=reviewer, gold_id=golds[0].pk, labels=["violating"])
    onboarding_answer(attempt_id=attempt.pk, reviewer=reviewer, gold_id=golds[0].pk, labels=["not_violating"])
    assert list(attempt.answers.values_list("labels", flat=True)) == [["violating"]]
    assert onboarding_next(attempt=attempt).gold.pk == golds[1].pk
    intruder = UserFactory(username="intruder")
    with pytest.raises(attempt.DoesNotExist):
        onboarding_answer(attempt_id=attempt.pk, reviewer=intruder, gold_id=golds[1].pk, labels=["violating"])


def test_passing_lifts_an_automatic_pause(onboarding_queue, reviewer, golds) -> None:
    queue_standing_qualify(queue=onboarding_queue, reviewer=reviewer, actor=Actor.of(reviewer))
    queue_standing_pause(queue=onboarding_queue, reviewer=reviewer, reason="auto", actor=SYSTEM, automatic=True)
    answer_all(onboarding_start(queue=onboarding_queue, reviewer=reviewer), reviewer, right=True)
    standing = queue_standing_for(queue=onboarding_queue, reviewer=reviewer)
    assert standing.live and not standing.paused


def test_the_rest_onboarding_flow_for_a_reviewer_token(onboarding_queue, reviewer, golds, make_token) -> None:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['tasks:write'], user=reviewer)}")
    url = f"/api/v1/queues/{onboarding_queue.pk}/onboarding"
    body = api.post(url).json()
    assert body["standing"]["status"] == "onboarding" and body["next_item"]["position"] == 1
    for _ in range(2):
        item = body["next_item"]
        reference = GoldLabel.objects.get(pk=item["gold"]).labels
        response = api.post(
            url + "/answers", {"attempt": item["attempt"], "gold": item["gold"], "labels": reference}, format="json"
        )
        assert response.status_code == 201
        body = response.json()
    assert body["next_item"] is None and body["last_result"]["passed"] is True
    assert body["standing"]["status"] == "live"
    assert [r["correct"] for r in body["last_result"]["review"]] == [True, True]
    bad = api.post(
        url + "/answers",
        {"attempt": body["last_result"]["attempt"], "gold": golds[0].pk, "labels": ["x"]},
        format="json",
    )
    assert bad.status_code == 409


def test_graphic_media_stay_blurred_on_the_onboarding_page(policy, onboarding_queue, reviewer, settings) -> None:
    settings.MEDIA_ALLOWED_HOSTS = ["media.example"]
    item = ContentItemFactory(modality="image", media_urls=["https://media.example/a.jpg"])
    gold_record(
        item_id=item.pk,
        policy_version=policy.current_version(),
        labels=["violating"],
        source="adjudication",
        actor=SYSTEM,
    )
    onboarding_start(queue=onboarding_queue, reviewer=reviewer)
    client = Client()
    client.force_login(reviewer)
    response = client.get(f"/queues/{onboarding_queue.pk}/onboarding/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "media concealed" in html and "reveal-button" not in html


def test_a_honeypot_on_an_item_from_the_reviewers_onboarding_set_is_never_served_to_them(
    policy, onboarding_queue, reviewer, golds
) -> None:
    attempt = answer_all(onboarding_start(queue=onboarding_queue, reviewer=reviewer), reviewer, right=True)
    assert queue_standing_for(queue=onboarding_queue, reviewer=reviewer).live
    seen = GoldLabel.objects.get(pk=attempt.gold_ids[0])
    unseen = next(g for g in golds if g.pk not in attempt.gold_ids)
    onboarding_queue.tasks.update(status="cancelled")  # only the two honeypots below are open
    for gold, priority in ((seen, 9), (unseen, 1)):
        task = ReviewTaskFactory(
            policy=policy, queue=onboarding_queue, item=gold.item, reason="honeypot", priority=priority
        )
        HoneypotCheck.objects.create(task=task, gold=gold)
    claim = task_claim_next(reviewer=reviewer, queue=onboarding_queue)
    assert claim is not None and claim.task.item_id == unseen.item_id  # the higher-priority one is skipped
    other = UserFactory(username="veteran")
    onboarding_queue.members.add(other)
    queue_standing_qualify(queue=onboarding_queue, reviewer=other, actor=SYSTEM)
    assert task_claim_next(reviewer=other, queue=onboarding_queue).task.item_id == seen.item_id
