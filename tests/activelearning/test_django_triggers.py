"""Rounds that start without a person: enough new gold, the schedule, and stalled rounds re-sent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from activelearning.models import RunStage, RunTrigger, TrainingRun
from activelearning.services.triggers import rounds_resume_stalled, rounds_start_due
from tests.activelearning.test_django_helpers import al_policy, load_items


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Tasks the triggers enqueue, recorded instead of sent to the broker."""
    calls: list[tuple] = []

    def record(task, *ids: int) -> None:  # type: ignore[no-untyped-def]
        calls.append((task.name.removeprefix("activelearning."), *ids))

    monkeypatch.setattr("activelearning.services.rounds.enqueue_after_commit", record)
    monkeypatch.setattr("activelearning.services.triggers.enqueue_after_commit", record)
    return calls


def test_enough_new_gold_starts_one_round(db, settings, sent, django_capture_on_commit_callbacks) -> None:
    settings.AL_RETRAIN_EVERY_N_GOLD = 60
    policy, _ = al_policy("abuse")
    load_items(policy, "toxic-spans", items=80, gold=70)
    TrainingRun.objects.create(policy=policy, status="succeeded", stage="done", gold_watermark=0)

    with django_capture_on_commit_callbacks(execute=True):
        started = rounds_start_due(trigger=RunTrigger.NEW_GOLD)
        again = rounds_start_due(trigger=RunTrigger.NEW_GOLD)

    assert [run.trigger for run in started] == ["new_gold"] and again == []
    assert sent == [("retrain", started[0].pk)]


def test_the_schedule_waits_for_new_gold_and_for_the_interval(db, settings, sent) -> None:
    settings.AL_RETRAIN_EVERY_HOURS = 24
    policy, _ = al_policy("abuse")
    load_items(policy, "toxic-spans", items=60, gold=55)
    watermark = policy.gold_labels.order_by("-id").values_list("id", flat=True)[0]
    recent = TrainingRun.objects.create(policy=policy, status="succeeded", stage="done", gold_watermark=watermark)

    assert rounds_start_due(trigger=RunTrigger.SCHEDULE) == []  # nothing new since the last round
    TrainingRun.objects.filter(pk=recent.pk).update(gold_watermark=watermark - 1)
    assert rounds_start_due(trigger=RunTrigger.SCHEDULE) == []  # new gold, but the last round is recent
    TrainingRun.objects.filter(pk=recent.pk).update(created_at=timezone.now() - timedelta(hours=25))
    assert [run.trigger for run in rounds_start_due(trigger=RunTrigger.SCHEDULE)] == ["schedule"]


def test_a_stalled_round_is_sent_again_from_its_stage(db, settings, sent) -> None:
    settings.AL_STALL_MINUTES = 30
    policy, _ = al_policy("abuse")
    stalled = TrainingRun.objects.create(policy=policy, status="queued", stage=RunStage.QUEUED)
    TrainingRun.objects.filter(pk=stalled.pk).update(updated_at=timezone.now() - timedelta(minutes=31))
    fresh_policy, _ = al_policy("fresh")
    TrainingRun.objects.create(policy=fresh_policy, status="running", stage=RunStage.TRAINING)

    assert rounds_resume_stalled() == 1
    assert sent == [("retrain", stalled.pk)]
