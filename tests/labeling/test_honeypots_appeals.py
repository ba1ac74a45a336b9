"""Honeypots measure reviewers without their knowing; appeals reopen items and report overturns."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from labeling.models import Appeal, GoldSource, HoneypotCheck
from labeling.services.annotations import annotation_submit
from labeling.services.appeals import appeal_open, appeal_overturn_rates
from labeling.services.gold import gold_record
from labeling.services.honeypots import honeypot_accuracy, honeypots_top_up
from reviewapp.audit import SYSTEM
from reviewapp.models import ContentItem, ModelDecision, ReviewTask, TaskReason
from reviewapp.services.claims import task_claim_next
from tests.factories import ContentItemFactory, QueueFactory, ReviewTaskFactory, UserFactory


@pytest.fixture(autouse=True)
def _no_undo_window(settings):  # type: ignore[no-untyped-def]
    settings.UNDO_WINDOW_SECONDS = 0


def make_gold(policy, labels):  # type: ignore[no-untyped-def]
    return gold_record(
        item_id=ContentItemFactory().pk,
        policy_version=policy.current_version(),
        labels=labels,
        source=GoldSource.ADJUDICATION,
        actor=SYSTEM,
    )


def test_top_up_injects_honeypots_at_the_queue_rate(policy, queue) -> None:
    queue.honeypot_rate = 0.2
    queue.save()
    ReviewTaskFactory.create_batch(8, policy=policy, queue=queue, priority=3)
    golds = [make_gold(policy, ["violating"]) for _ in range(5)]
    added = honeypots_top_up(queue=queue)
    assert added == 2  # 8 real tasks at 20 % → 2 honeypots
    honeypots = ReviewTask.objects.filter(reason=TaskReason.HONEYPOT)
    assert {t.item_id for t in honeypots} <= {g.item_id for g in golds}
    assert {t.priority for t in honeypots} == {3}  # ordered like real work
    assert honeypots_top_up(queue=queue) == 0  # idempotent at the target


def test_honeypot_answers_are_scored_per_reviewer(policy, queue) -> None:
    queue.honeypot_rate = 0.5
    queue.save()
    ReviewTaskFactory.create_batch(2, policy=policy, queue=queue, priority=0.1)
    make_gold(policy, ["violating"])
    make_gold(policy, ["violating"])
    honeypots_top_up(queue=queue)
    good, bad = UserFactory(username="good"), UserFactory(username="bad")
    for reviewer, labels in ((good, ["violating"]), (bad, ["not_violating"])):
        task = ReviewTask.objects.filter(reason=TaskReason.HONEYPOT, annotation_count=0).first()
        ReviewTask.objects.filter(pk=task.pk).update(priority=99)
        claim = task_claim_next(reviewer=reviewer, queue=queue)
        annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=labels)
    accuracy = {row.reviewer_id: row.accuracy for row in honeypot_accuracy(policy_id=policy.pk)}
    assert accuracy == {good.pk: 1.0, bad.pk: 0.0}
    assert HoneypotCheck.objects.filter(correct__isnull=False).count() == 2


@pytest.fixture
def appeals_queue(db):  # type: ignore[no-untyped-def]
    return QueueFactory(slug="appeals", kind="appeals")


def test_appeal_of_model_action_reopens_item_and_reports_overturn(policy, appeals_queue) -> None:
    item = ContentItemFactory(source="comments", external_id="c-9")
    ModelDecision.objects.create(
        item=item,
        policy=policy,
        model_name="tox",
        model_version="3",
        score=0.97,
        predicted_label="violating",
        routing_outcome="auto_action",
        sampling_propensity=0.0,
    )
    opened = appeal_open(
        source="comments",
        external_id="c-9",
        policy_key=policy.key,
        external_ref="ap-1",
        statement="it was a joke between friends",
        actor=SYSTEM,
    )
    assert opened.created and opened.appeal.original_labels == ["violating"]
    again = appeal_open(
        source="comments", external_id="c-9", policy_key=policy.key, external_ref="ap-1", statement="", actor=SYSTEM
    )
    assert not again.created and Appeal.objects.count() == 1
    reviewer = UserFactory()
    claim = task_claim_next(reviewer=reviewer, queue=appeals_queue)
    annotation_submit(task_id=claim.task.pk, reviewer=reviewer, submission_id=uuid.uuid4(), labels=["not_violating"])
    appeal = Appeal.objects.get()
    assert appeal.status == "overturned" and appeal.outcome_gold.source == GoldSource.APPEAL
    rates = appeal_overturn_rates()
    assert [(r.key, r.decided, r.overturned) for r in rates["model"]] == [("tox@3", 1, 1)]
    assert rates["policy"][0].rate == 1.0


def test_appeal_of_unknown_item_is_refused(policy, appeals_queue) -> None:
    with pytest.raises(ValidationError, match="no content item"):
        appeal_open(
            source="x", external_id="nope", policy_key=policy.key, external_ref="ap-2", statement="", actor=SYSTEM
        )


def test_appeals_api(make_token, policy, appeals_queue) -> None:
    item = ContentItemFactory(source="comments", external_id="c-10")
    gold_record(
        item_id=item.pk,
        policy_version=policy.current_version(),
        labels=["violating"],
        source=GoldSource.CONSENSUS,
        actor=SYSTEM,
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(['appeals:write'])}")
    body = {
        "source": "comments",
        "external_id": "c-10",
        "policy": policy.key,
        "appeal_id": "ext-77",
        "statement": "<script>alert(1)</script>",
    }
    first = client.post("/api/v1/appeals", body, format="json")
    second = client.post("/api/v1/appeals", body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["status"] == "open" and first.json()["original_labels"] == ["violating"]
    bad = client.post("/api/v1/appeals", {**body, "appeal_id": "ext-78", "policy": "nope"}, format="json")
    assert bad.status_code == 400 and "unknown policy" in bad.json()["detail"]


def test_honeypots_carry_an_author_key_exactly_when_most_live_work_does(policy, queue) -> None:
    """The workspace shows an author line only for items with an author, so it must not tell them apart."""
    queue.honeypot_rate = 0.5
    queue.save()
    for n in range(4):
        ReviewTaskFactory(policy=policy, queue=queue, item=ContentItemFactory(author_key=f"acct-{n}"))
    anonymous = [make_gold(policy, ["violating"]) for _ in range(3)]
    assert honeypots_top_up(queue=queue) == 0  # only gold without authors: none would look live
    authored = []
    for n in range(3):
        gold = make_gold(policy, ["violating"])
        ContentItem.objects.filter(pk=gold.item_id).update(author_key=f"acct-gold-{n}")
        authored.append(gold)
    assert honeypots_top_up(queue=queue) == 3
    served = set(ReviewTask.objects.filter(reason=TaskReason.HONEYPOT).values_list("item_id", flat=True))
    assert served == {g.item_id for g in authored} and not served & {g.item_id for g in anonymous}
