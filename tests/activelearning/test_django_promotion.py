"""Champion / challenger on held-out gold, and routing-threshold proposals for the champion."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from activelearning.models import ModelStatus, ModelVersion, ProposalStatus
from activelearning.services.promotion import model_version_promote, slice_deltas
from activelearning.services.rounds import training_run_finish, training_run_start
from activelearning.services.thresholds import (
    ProposalClosed,
    threshold_proposal_approve,
    threshold_proposal_reject,
    thresholds_propose,
)
from activelearning.services.training import training_run_execute
from reviewapp.audit import SYSTEM
from reviewapp.models import AuditEvent, RoutingRule
from tests.activelearning.test_django_helpers import FAST_ROUND, al_policy, load_items, model_files  # noqa: F401 (fixture)
from tests.factories import QueueFactory, ReviewTaskFactory, UserFactory

# Slow tier: trains and evaluates real models on real data.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("model_files")]
# A challenger that barely trains: one epoch at a learning rate that moves nothing.
CRIPPLED = {"head": {**FAST_ROUND["head"], "max_epochs": 1, "lr": 1e-6, "embedding_lr": 1e-6}}


@pytest.fixture
def abuse(db):  # type: ignore[no-untyped-def]
    policy, _ = al_policy("abuse")
    load_items(policy, "convabuse", items=900, gold=800)
    return policy


@pytest.fixture
def abuse_for_thresholds(db):  # type: ignore[no-untyped-def]
    """Enough gold that the dev split, where thresholds are chosen, holds a usable number of violations."""
    policy, _ = al_policy("abuse")
    load_items(policy, "convabuse", items=760, gold=720)
    return policy


def train(policy, capture, **params) -> ModelVersion:  # type: ignore[no-untyped-def]
    with capture(execute=False):
        run = training_run_start(policy=policy, actor=SYSTEM, params={**FAST_ROUND, "pipeline": "train", **params})
    with capture(execute=True):
        version = training_run_execute(run_id=run.pk)
    training_run_finish(run_id=run.pk)  # what the task does after a training-only round
    return version


def test_promotion_refuses_a_worse_challenger_and_says_why(abuse, django_capture_on_commit_callbacks) -> None:
    champion = train(abuse, django_capture_on_commit_callbacks)
    assert model_version_promote(version_id=champion.pk).outcome == "promoted"
    challenger = train(abuse, django_capture_on_commit_callbacks, **CRIPPLED)

    decision = model_version_promote(version_id=challenger.pk)

    champion.refresh_from_db()
    challenger.refresh_from_db()
    assert decision.outcome == "rejected" and decision.champion == champion
    assert champion.status == ModelStatus.CHAMPION and challenger.status == ModelStatus.CANDIDATE
    assert decision.reasons[0].startswith("Not reliably better than champion v1 (Δ macro-F1 -")
    assert decision.reasons[-1] == "Champion v1 stays."
    assert decision.comparison["delta"] < 0 and decision.comparison["high"] < 0.05
    assert AuditEvent.objects.filter(action="model.rejected", object_id=str(challenger.pk)).exists()
    assert model_version_promote(version_id=challenger.pk) == decision  # idempotent


def test_a_better_challenger_replaces_the_champion(abuse, django_capture_on_commit_callbacks) -> None:
    weak = train(abuse, django_capture_on_commit_callbacks, **CRIPPLED)
    ModelVersion.objects.filter(pk=weak.pk).update(status=ModelStatus.CHAMPION)  # as if promoted long ago
    strong = train(abuse, django_capture_on_commit_callbacks)

    decision = model_version_promote(version_id=strong.pk)

    weak.refresh_from_db()
    strong.refresh_from_db()
    assert decision.outcome == "promoted", decision.reasons
    assert decision.reasons[0].startswith("Beats champion v1 (Δ macro-F1 +")
    assert (weak.status, strong.status) == (ModelStatus.RETIRED, ModelStatus.CHAMPION)
    assert decision.comparison["low"] > 0 and decision.comparison["slices"]


def test_a_slice_worse_beyond_the_tolerance_is_flagged(settings) -> None:
    settings.AL_MIN_SLICE = 2
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0])
    old = y.copy()
    mine = np.array([1, 0, 1, 0, 0, 1, 0, 1])  # right on GB, wrong on US
    regions = ["GB"] * 4 + ["US"] * 4

    rows = slice_deltas({"region": regions}, y, old, mine, 2)

    flagged = {r["value"]: r["worse"] for r in rows}
    assert flagged == {"GB": False, "US": True}


def test_thresholds_are_proposed_for_the_champion_and_applied_only_on_approval(
    abuse_for_thresholds, django_capture_on_commit_callbacks
) -> None:
    abuse = abuse_for_thresholds
    champion = train(abuse, django_capture_on_commit_callbacks)
    model_version_promote(version_id=champion.pk)
    lead = UserFactory(username="lead")

    proposal = thresholds_propose(version_id=champion.pk, target_precision=0.8, target_recall=0.9)

    assert proposal.status == ProposalStatus.PENDING and proposal.model_name == "al-abuse"
    assert proposal.auto_action is not None and proposal.estimates["chosen_on"]["action"]["precision"] >= 0.8
    assert not RoutingRule.objects.filter(model_name="al-abuse").exists()  # nothing changes before approval
    rule = threshold_proposal_approve(proposal_id=proposal.pk, lead=lead, note="checked the curve")
    assert (rule.auto_clear, rule.auto_action) == (proposal.auto_clear, proposal.auto_action)
    assert rule.queue == RoutingRule.objects.get(policy=abuse, model_name="*").queue
    event = AuditEvent.objects.get(action="routing_rule.thresholds_changed")
    assert event.actor_label == "lead" and event.after["threshold_proposal"] == proposal.pk
    with pytest.raises(ProposalClosed):
        threshold_proposal_reject(proposal_id=proposal.pk, lead=lead)


def test_a_new_proposal_supersedes_the_pending_one_and_candidates_get_none(
    abuse, django_capture_on_commit_callbacks
) -> None:
    champion = train(abuse, django_capture_on_commit_callbacks)
    assert thresholds_propose(version_id=champion.pk) is None  # not the champion yet
    model_version_promote(version_id=champion.pk)
    first = thresholds_propose(version_id=champion.pk)
    second = thresholds_propose(version_id=champion.pk)

    first.refresh_from_db()
    assert first.status == ProposalStatus.SUPERSEDED and second.status == ProposalStatus.PENDING


def test_approval_without_any_rule_to_copy_is_refused(db, django_capture_on_commit_callbacks) -> None:
    policy, _ = al_policy("abuse")
    RoutingRule.objects.filter(policy=policy).delete()
    load_items(policy, "convabuse", items=900, gold=800)
    champion = train(policy, django_capture_on_commit_callbacks, pipeline="train")
    ModelVersion.objects.filter(pk=champion.pk).update(status=ModelStatus.CHAMPION)
    proposal = thresholds_propose(version_id=champion.pk, target_precision=0.8)

    with pytest.raises(ValidationError, match="no default"):
        threshold_proposal_approve(proposal_id=proposal.pk, lead=UserFactory(username="lead"))


def test_approval_for_an_imported_policy_routes_to_the_queue_its_rounds_use(
    db, django_capture_on_commit_callbacks
) -> None:
    """A policy whose items came from a dataset import has no `*` rule: the new rule takes the review
    queue holding its tasks (where its rounds send work), with no audit sample, and is audited."""
    policy, _ = al_policy("abuse")
    RoutingRule.objects.filter(policy=policy).delete()
    _, pool = load_items(policy, "convabuse", items=900, gold=800)
    imported = QueueFactory(slug="abuse-crowd")
    ReviewTaskFactory(item_id=pool[0], policy=policy, queue=imported)
    champion = train(policy, django_capture_on_commit_callbacks, pipeline="train")
    ModelVersion.objects.filter(pk=champion.pk).update(status=ModelStatus.CHAMPION)
    proposal = thresholds_propose(version_id=champion.pk, target_precision=0.8)

    rule = threshold_proposal_approve(proposal_id=proposal.pk, lead=UserFactory(username="lead"))

    assert (rule.model_name, rule.queue_id, rule.audit_queue_id) == (champion.model_name, imported.pk, None)
    assert (rule.audit_rate_clear, rule.audit_rate_action) == (0.0, 0.0)
    assert AuditEvent.objects.filter(action="routing_rule.created", object_id=str(rule.pk)).exists()
