"""The LLM as an upstream model: a scoring run's judgements become routed ModelDecisions via ingest."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from labeling.llm.backends import backend_for
from labeling.llm.models import LLMJudgement, LLMReviewer, LLMRun, RunKind
from labeling.llm.prompting import policy_prompt
from labeling.llm.services.scoring import (
    llm_decisions_record,
    llm_model_version,
    violating_label,
)
from labeling.llm.services.scoring_jobs import scoring_item_ids
from labeling.models import Policy
from reviewapp.models import AuditEvent, ContentItem, ModelDecision, ReviewTask, RoutingOutcome, RoutingRule
from tests.factories import ContentItemFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer(policy: Policy, routing_rule: RoutingRule) -> LLMReviewer:
    return LLMReviewer.objects.create(
        name="gemma",
        policy=policy,
        policy_version=policy.current_version(),
        model_name="gemma-3-270m",
        account=UserFactory(username="llm-gemma"),
    )


def scoring_run(reviewer: LLMReviewer, answers: list[tuple[str, float | None]]) -> tuple[LLMRun, list[int]]:
    """A scoring run with one plain judgement per (label, P(violating)); label "" abstains."""
    items = [ContentItemFactory() for _ in answers]
    run = LLMRun.objects.create(reviewer=reviewer, kind=RunKind.SCORING, item_ids=[i.pk for i in items], variants=[""])
    ids = []
    for item, (label, p) in zip(items, answers, strict=True):
        scores = {} if p is None else {"violating": p, "not_violating": 1 - p}
        judgement = LLMJudgement.objects.create(
            run=run, item=item, variant="", label=label, scores=scores, abstain_reason="" if label else "no text"
        )
        ids.append(judgement.pk)
    return run, ids


def test_judgements_become_decisions_routed_by_the_policys_rule(reviewer: LLMReviewer) -> None:
    run, ids = scoring_run(reviewer, [("violating", 0.95), ("violating", 0.6), ("not_violating", 0.05)])
    recorded = llm_decisions_record(run_id=run.pk, judgement_ids=ids)
    assert (recorded.created, recorded.duplicate, recorded.abstained, recorded.errors) == (3, 0, 0, [])
    decisions = {d.item_id: d for d in ModelDecision.objects.all()}
    confident, unsure, clear = (decisions[item_id] for item_id in run.item_ids)
    assert confident.routing_outcome == RoutingOutcome.AUTO_ACTION and confident.score == pytest.approx(0.95)
    assert unsure.routing_outcome == RoutingOutcome.REVIEW
    assert ReviewTask.objects.get(decision=unsure).queue == reviewer.policy.routing_rules.get().queue
    assert clear.routing_outcome == RoutingOutcome.AUTO_CLEAR
    version = llm_model_version(
        model_key=backend_for(reviewer).model_key, prompt_hash=policy_prompt(reviewer).prompt_hash
    )
    assert {(d.model_name, d.model_version, d.predicted_label) for d in decisions.values()} == {
        ("llm:gemma", version, "violating"),
        ("llm:gemma", version, "not_violating"),
    }
    assert (confident.auto_action_threshold, confident.sampling_propensity) == (0.9, 0.0)
    events = AuditEvent.objects.filter(action="decision.ingested")
    assert events.count() == 3 and {e.actor_label for e in events} == {"llm-gemma"}


def test_recording_the_same_judgements_twice_stores_nothing_twice(reviewer: LLMReviewer) -> None:
    run, ids = scoring_run(reviewer, [("violating", 0.95), ("violating", 0.6)])
    llm_decisions_record(run_id=run.pk, judgement_ids=ids)
    again = llm_decisions_record(run_id=run.pk, judgement_ids=ids)
    assert (again.created, again.duplicate, again.errors) == (0, 2, [])
    assert ModelDecision.objects.count() == 2 and ReviewTask.objects.count() == 1
    assert AuditEvent.objects.filter(action="decision.ingested").count() == 2


def test_abstentions_record_no_decision(reviewer: LLMReviewer) -> None:
    run, ids = scoring_run(reviewer, [("", None), ("", None)])
    recorded = llm_decisions_record(run_id=run.pk, judgement_ids=ids)
    assert (recorded.created, recorded.abstained) == (0, 2)
    assert not ModelDecision.objects.exists()


def test_a_backend_without_probabilities_scores_its_answer_as_certain(reviewer: LLMReviewer) -> None:
    run, ids = scoring_run(reviewer, [("violating", None), ("not_violating", None)])
    llm_decisions_record(run_id=run.pk, judgement_ids=ids)
    scores = dict(ModelDecision.objects.values_list("item_id", "score"))
    assert [scores[item_id] for item_id in run.item_ids] == [1.0, 0.0]


def test_judgements_of_other_runs_or_variants_are_ignored(reviewer: LLMReviewer) -> None:
    run, ids = scoring_run(reviewer, [("violating", 0.95)])
    _other_run, other_ids = scoring_run(reviewer, [("violating", 0.95)])
    injected = LLMJudgement.objects.create(run=run, item_id=run.item_ids[0], variant="roleplay", label="violating")
    recorded = llm_decisions_record(run_id=run.pk, judgement_ids=[*ids, *other_ids, injected.pk])
    assert recorded.created == 1 and ModelDecision.objects.get().item_id == run.item_ids[0]


def test_a_policy_without_a_routing_rule_is_reported_like_for_any_model(
    reviewer: LLMReviewer, caplog: pytest.LogCaptureFixture
) -> None:
    RoutingRule.objects.all().delete()
    run, ids = scoring_run(reviewer, [("violating", 0.95)])
    recorded = llm_decisions_record(run_id=run.pk, judgement_ids=ids)
    assert recorded.created == 0 and "no routing rule" in recorded.errors[0]["message"]
    assert f"llm scoring run {run.pk}: 1 rows refused by ingest" in caplog.text


def test_only_scoring_runs_are_recorded(reviewer: LLMReviewer) -> None:
    run = LLMRun.objects.create(reviewer=reviewer, kind=RunKind.GOLD_SAMPLE, variants=[""])
    with pytest.raises(ValidationError, match="not a scoring run"):
        llm_decisions_record(run_id=run.pk, judgement_ids=[])


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["violating", "not_violating"], "violating"),
        (["not_spam", "spam"], "spam"),
        (["no_threat", "non_credible", "threat"], "threat"),
        (["not_a", "not_b"], "not_a"),
    ],
)
def test_the_score_is_the_probability_of_the_label_space_positive_label(labels: list[str], expected: str) -> None:
    assert violating_label(labels) == expected


def test_the_model_version_is_stable_and_changes_with_the_prompt() -> None:
    assert llm_model_version(model_key="m", prompt_hash="a") == llm_model_version(model_key="m", prompt_hash="a")
    assert llm_model_version(model_key="m", prompt_hash="a") != llm_model_version(model_key="m", prompt_hash="b")
    assert len(llm_model_version(model_key="m", prompt_hash="a")) == 12


def test_items_to_score_are_the_given_ones_or_the_policys_since_a_time(reviewer: LLMReviewer) -> None:
    run, ids = scoring_run(reviewer, [("violating", 0.6)])
    llm_decisions_record(run_id=run.pk, judgement_ids=ids)  # gives the item a decision of the policy
    ContentItemFactory()  # no decision or task of the policy
    first = ContentItem.objects.get(pk=run.item_ids[0])
    assert scoring_item_ids(reviewer=reviewer, since=first.created_at) == [first.pk]
    assert scoring_item_ids(reviewer=reviewer, item_ids=[first.pk, 999_999, first.pk]) == [first.pk]
    with pytest.raises(ValidationError, match="Give the items"):
        scoring_item_ids(reviewer=reviewer)


def test_the_command_refuses_bad_input(reviewer: LLMReviewer) -> None:
    with pytest.raises(CommandError, match="no LLM reviewer"):
        call_command("llm_score", "--reviewer", "nobody", "--items", "1")
    with pytest.raises(CommandError, match="comma-separated integers"):
        call_command("llm_score", "--reviewer", "gemma", "--items", "1,x")
    with pytest.raises(CommandError, match="time zone"):
        call_command("llm_score", "--reviewer", "gemma", "--since", "2026-12-01")
    with pytest.raises(CommandError, match="No items to score"):
        call_command("llm_score", "--reviewer", "gemma", "--items", "999999")
