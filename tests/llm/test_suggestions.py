"""LLM pre-labels: who is eligible, the recorded draw, the settings service and the automation-bias report."""

from __future__ import annotations

import math
import uuid

import pytest
from django.core.exceptions import ValidationError

from labeling.llm.models import QueuePrelabels, SuggestionExposure
from labeling.llm.services.suggestions import (
    MAX_SUGGEST_FRACTION,
    automation_bias_report,
    honeypot_odds_without_suggestion,
    prelabels_configure,
    suggestion_accepted_record,
    suggestion_for,
)
from labeling.models import Annotation, GoldLabel, GoldSource
from labeling.stats.proportions import newcombe_difference_interval, wilson_interval
from reviewapp.audit import Actor
from reviewapp.models import AuditEvent
from tests.factories import QueueFactory, ReviewTaskFactory, UserFactory
from tests.llm.prelabels_data import llm_annotation, llm_reviewer, prelabels_on

pytestmark = pytest.mark.django_db
LEAD = Actor(None, "lead")


@pytest.fixture
def llm(policy):  # type: ignore[no-untyped-def]
    return llm_reviewer(policy)


@pytest.fixture
def person(queue):  # type: ignore[no-untyped-def]
    user = UserFactory(username="rev-pre")
    queue.members.add(user)
    return user


@pytest.fixture
def labelled_task(policy, queue, llm):  # type: ignore[no-untyped-def]
    task = ReviewTaskFactory(policy=policy, queue=queue)
    llm_annotation(llm, task, "violating")
    return task


def test_a_shown_suggestion_names_the_label_title_and_model(queue, llm, labelled_task, person) -> None:
    prelabels_on(queue, llm, fraction=0.5)
    SuggestionExposure.objects.create(
        task=labelled_task, reviewer=person, shown=True, suggested_label="violating", llm_reviewer=llm
    )
    suggestion = suggestion_for(task=labelled_task, reviewer=person)
    assert suggestion is not None
    assert (suggestion.label, suggestion.title, suggestion.llm_reviewer) == ("violating", "Violating", llm.name)
    assert suggestion.probability is None  # no judgement row: the annotation was made directly


@pytest.mark.parametrize("case", ["blind", "honeypot", "disabled", "no_settings", "no_llm_annotation", "retracted"])
def test_no_suggestion_and_no_draw_where_not_eligible(case, policy, queue, llm, person) -> None:  # type: ignore[no-untyped-def]
    task = ReviewTaskFactory(policy=policy, queue=queue, reason="honeypot" if case == "honeypot" else "low_confidence")
    annotation = None if case == "no_llm_annotation" else llm_annotation(llm, task, "violating")
    if case != "no_settings":
        prelabels_on(queue, llm, fraction=MAX_SUGGEST_FRACTION)
    if case == "blind":
        queue.blind_review = True
        queue.save()
    if case == "disabled":
        QueuePrelabels.objects.update(enabled=False)
    if case == "retracted":
        Annotation.objects.filter(pk=annotation.pk).update(retracted_at="2026-01-01T00:00Z")  # type: ignore[union-attr]
    task.refresh_from_db()
    for _ in range(20):  # at fraction 0.9 an eligible task would have shown it almost surely
        assert suggestion_for(task=task, reviewer=person) is None
    assert not SuggestionExposure.objects.exists()


def test_the_draw_is_recorded_once_and_reused(queue, llm, labelled_task, person) -> None:
    prelabels_on(queue, llm, fraction=0.5)
    first = suggestion_for(task=labelled_task, reviewer=person)
    exposure = SuggestionExposure.objects.get()
    for _ in range(30):
        assert suggestion_for(task=labelled_task, reviewer=person) == first
    assert SuggestionExposure.objects.count() == 1
    assert (first is not None) == exposure.shown
    assert AuditEvent.objects.filter(action="suggestion.drawn").count() == 1


def test_the_shown_share_is_about_the_fraction(policy, queue, llm, person) -> None:
    prelabels_on(queue, llm, fraction=0.3)
    tasks = ReviewTaskFactory.create_batch(400, policy=policy, queue=queue)
    for task in tasks:
        llm_annotation(llm, task, "not_violating")
    shown = sum(suggestion_for(task=task, reviewer=person) is not None for task in tasks)
    # Binomial(400, 0.3): mean 120, sd 9.2; the bounds are 5 sd away.
    assert 74 <= shown <= 166
    assert SuggestionExposure.objects.filter(shown=True).count() == shown


def test_configure_sets_and_audits(policy, queue, llm) -> None:
    ReviewTaskFactory(policy=policy, queue=queue)
    lead = LEAD
    settings = prelabels_configure(
        queue=queue, reviewer=llm, enabled=True, suggest_fraction=0.4, counts_toward_consensus=True, actor=lead
    )
    assert settings is not None and (settings.enabled, settings.suggest_fraction) == (True, 0.4)
    prelabels_configure(
        queue=queue, reviewer=None, enabled=False, suggest_fraction=0.4, counts_toward_consensus=False, actor=lead
    )
    settings.refresh_from_db()
    assert (settings.enabled, settings.counts_toward_consensus) == (False, False)
    events = AuditEvent.objects.filter(action="prelabels.configured").order_by("pk")
    assert [e.before is None for e in events] == [True, False]
    assert events[1].after["enabled"] is False


def _configure(queue, llm, fraction):  # type: ignore[no-untyped-def]
    return prelabels_configure(
        queue=queue, reviewer=llm, enabled=True, suggest_fraction=fraction, counts_toward_consensus=False, actor=LEAD
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"blind_review": True}, "Blind queue"),
        ({"kind": "appeals"}, "independent"),
        ({"kind": "audit"}, "independent"),
    ],
)
def test_configure_refuses_queues_that_must_stay_independent(policy, llm, change, message) -> None:  # type: ignore[no-untyped-def]
    queue = QueueFactory(slug="refused", **change)
    ReviewTaskFactory(policy=policy, queue=queue)
    with pytest.raises(ValidationError, match=message):
        _configure(queue, llm, 0.5)
    assert not QueuePrelabels.objects.exists()


@pytest.mark.parametrize("fraction", [-0.1, 0.95, 1.0, math.nan])
def test_configure_refuses_a_fraction_that_would_give_honeypots_away(policy, queue, llm, fraction) -> None:  # type: ignore[no-untyped-def]
    ReviewTaskFactory(policy=policy, queue=queue)
    with pytest.raises(ValidationError, match="honeypot"):
        _configure(queue, llm, fraction)


def test_configure_refuses_suggestions_without_an_llm(queue) -> None:
    with pytest.raises(ValidationError, match="Choose the LLM reviewer"):
        _configure(queue, None, 0.5)


def test_configure_refuses_an_llm_of_another_policy(queue, llm) -> None:
    other = ReviewTaskFactory(queue=queue).policy  # the queue carries only another policy
    assert other != llm.policy
    with pytest.raises(ValidationError, match="does not carry"):
        _configure(queue, llm, 0.5)


def test_honeypot_odds_without_a_suggestion() -> None:
    assert honeypot_odds_without_suggestion(honeypot_rate=0.0, suggest_fraction=0.9) == 1.0
    assert honeypot_odds_without_suggestion(honeypot_rate=0.05, suggest_fraction=0.0) == pytest.approx(1.0)
    assert honeypot_odds_without_suggestion(honeypot_rate=0.05, suggest_fraction=0.9) == pytest.approx(1 / 0.145)


def test_an_acceptance_counts_only_with_the_suggested_label(queue, llm, labelled_task, person) -> None:
    SuggestionExposure.objects.create(
        task=labelled_task, reviewer=person, shown=True, suggested_label="violating", llm_reviewer=llm
    )
    assert not suggestion_accepted_record(task=labelled_task, reviewer=person, labels=["not_violating"])
    assert suggestion_accepted_record(task=labelled_task, reviewer=person, labels=["violating"])
    assert not suggestion_accepted_record(task=labelled_task, reviewer=person, labels=["violating"])  # once
    assert SuggestionExposure.objects.get().accepted_with_key
    assert AuditEvent.objects.filter(action="suggestion.accepted").count() == 1


# ---- the automation-bias report, against a hand computation ----


def _answer(task, reviewer, label):  # type: ignore[no-untyped-def]
    return Annotation.objects.create(
        task=task,
        item_id=task.item_id,
        policy_id=task.policy_id,
        policy_version=task.policy.current_version(),
        reviewer=reviewer,
        submission_id=uuid.uuid4(),
        labels=[label],
        handle_time_ms=1000,
    )


def _gold(task, label):  # type: ignore[no-untyped-def]
    GoldLabel.objects.create(
        item_id=task.item_id,
        policy_id=task.policy_id,
        policy_version=task.policy.current_version(),
        labels=[label],
        source=GoldSource.ADJUDICATION,
    )


V, N = "violating", "not_violating"
# (shown, suggested, human answer, gold, accepted with the key); None gold: no gold label yet.
DRAWS = [
    (True, V, V, V, True),
    (True, V, V, V, False),
    (True, V, V, N, True),  # followed a wrong suggestion
    (True, N, N, N, False),
    (True, N, V, V, False),  # resisted a wrong suggestion
    (True, V, V, None, True),  # no gold: counts only for following and acceptance
    (False, V, V, V, False),
    (False, V, N, N, False),  # a wrong suggestion, not shown: right
    (False, N, V, N, False),
    (False, N, N, N, False),
    (False, V, V, N, False),  # a wrong suggestion, not shown: wrong anyway
]


def test_the_report_equals_a_hand_computation(policy, queue, llm, person) -> None:
    for shown, suggested, answer, gold, accepted in DRAWS:
        task = ReviewTaskFactory(policy=policy, queue=queue)
        SuggestionExposure.objects.create(
            task=task,
            reviewer=person,
            shown=shown,
            suggested_label=suggested,
            llm_reviewer=llm,
            accepted_with_key=accepted,
        )
        _answer(task, person, answer)
        if gold:
            _gold(task, gold)
    unanswered = ReviewTaskFactory(policy=policy, queue=queue)  # drawn, then skipped: not measured
    SuggestionExposure.objects.create(task=unanswered, reviewer=person, shown=True, suggested_label=V, llm_reviewer=llm)

    report = automation_bias_report(queue=queue)

    # Shown with gold: rows 1-5, right on 1, 2, 4, 5 -> 4 of 5. Not shown: rows 7-11, right on 7, 8, 10 -> 3 of 5.
    assert (report.shown.k, report.shown.n, report.hidden.k, report.hidden.n) == (4, 5, 3, 5)
    assert (report.shown.low, report.shown.high) == wilson_interval(4, 5)
    point, low, high = newcombe_difference_interval(4, 5, 3, 5)
    assert (report.difference.point, report.difference.low, report.difference.high) == (point, low, high)
    assert point == pytest.approx(0.2)
    # Where the suggestion disagreed with gold: shown rows 3 (human wrong), 5 (right) -> 1 of 2;
    # not shown rows 8 (right), 11 (wrong) -> 1 of 2.
    assert (report.wrong_shown.k, report.wrong_shown.n, report.wrong_hidden.k, report.wrong_hidden.n) == (1, 2, 1, 2)
    # Followed the suggested label: shown rows 1, 2, 3, 4, 6 of 6; not shown rows 7, 10, 11 of 5.
    assert (report.followed_shown.k, report.followed_shown.n) == (5, 6)
    assert (report.followed_hidden.k, report.followed_hidden.n) == (3, 5)
    assert (report.accepted.k, report.accepted.n) == (3, 6)
    assert report.exposures == 12
    assert f"queue {queue.name}" in report.measured_on and "randomised" in report.measured_on
    assert automation_bias_report(policy=policy).shown == report.shown


def test_the_report_ignores_the_llm_own_annotations(policy, queue, llm, person) -> None:
    task = ReviewTaskFactory(policy=policy, queue=queue)
    llm_annotation(llm, task, V)
    SuggestionExposure.objects.create(task=task, reviewer=llm.account, shown=True, suggested_label=V, llm_reviewer=llm)
    _gold(task, V)
    report = automation_bias_report(policy=policy)
    assert report.shown.n == 0 and report.difference.point is None


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Table II example (a): 56/70 vs 48/80 -> 0.2000, (0.0524, 0.3339).
    point, low, high = newcombe_difference_interval(56, 70, 48, 80)
    assert (round(point, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
