"""Routing-threshold proposals from held-out gold, and their approval by a lead.

For the champion of a policy, with s = P(positive label), thresholds are *chosen* on the dev split
of current gold:
- auto_action: the lowest threshold whose automatic enforcements (s ≥ t) reach the target
  precision — the most automation that precision allows;
- auto_clear: the highest threshold such that the items cleared automatically (s ≤ t) hold at
  most (1 − target recall) of all violations — violations must keep reaching people.
Either may be impossible on the data (then it is left empty, i.e. that automation stays off).
The chosen thresholds are then *measured* once on the test split, which played no part in the
choice: precision, recall and automation share with 95 % percentile-bootstrap intervals over
items. Choosing and reporting on the same items would overstate precision (the choice picks the
threshold where the noise happens to help).

Both steps use one stratum (`activelearning.strata.decision_stratum` on the test split's sizes,
as promotion does): traffic, weighted by inverse sampling propensity, when it has enough items.
Proposals stored before this rule have no dev figures; `threshold_sources` labels them as chosen
and measured on test.

A proposal changes nothing until a lead approves it; approval writes the `RoutingRule` of the
model's name (created from the policy's default rule when missing) with an audit event.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from activelearning.strata import ALL, TRAFFIC, decision_stratum, effective_n, figure_label, threshold_figures
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.errors import Conflict
from reviewapp.models import RoutingRule

from ..models import ModelStatus, ModelVersion, ProposalStatus, ThresholdProposal
from .datasets import DEV
from .evaluation import HeldOut, held_out
from .numeric import ThresholdPoint, finite_or_none, threshold_for_precision, threshold_for_recall
from .registry import head_probs
from .rounds import review_queue_for

MIN_SUPPORT = 5  # items on an automatic side, below which a threshold is not proposed
INTERVAL_METHOD = "95 % percentile bootstrap over items (weights carried with their items)"


class ProposalClosed(Conflict):
    """The proposal was already decided or superseded."""


def thresholds_propose(
    *,
    version_id: int,
    target_precision: float | None = None,
    target_recall: float | None = None,
    actor: Actor = SYSTEM,
) -> ThresholdProposal | None:
    """Propose thresholds for a champion, chosen on dev and measured on test; supersedes its
    policy's earlier pending proposals.

    Returns None for a version that is not the champion (only the deployed model routes).
    """
    version = ModelVersion.objects.select_related("policy", "training_run").get(pk=version_id)
    if version.status != ModelStatus.CHAMPION:
        return None
    precision = target_precision or settings.AL_TARGET_PRECISION
    recall = target_recall or settings.AL_TARGET_RECALL
    test = held_out(version)
    sizes = test.sizes()
    stratum = decision_stratum(sizes, settings.AL_MIN_TEST) or decision_stratum(sizes, 1) or TRAFFIC
    dev = _scored(version, held_out(version, part=DEV), stratum, "dev")
    action = threshold_for_precision(
        dev["scores"], dev["positive"], precision, min_support=MIN_SUPPORT, weights=dev["weights"]
    )
    clear = threshold_for_recall(
        dev["scores"], dev["positive"], recall, min_support=MIN_SUPPORT, weights=dev["weights"]
    )
    if action is not None and clear is not None and clear.threshold >= action.threshold:
        clear = None  # the bands would overlap: keep enforcement, leave clearing to people
    rule = RoutingRule.objects.filter(policy_id=version.policy_id, model_name=version.model_name).first()
    estimates = {
        "chosen_on": {
            **_summary(dev),
            "action": asdict(action) if action else None,
            "clear": asdict(clear) if clear else None,
        },
        "measured_on": _measured(version, _scored(version, test, stratum, "test"), action, clear),
        "interval_method": INTERVAL_METHOD,
        "gold_watermark": test.gold.watermark,
    }
    with transaction.atomic():
        ThresholdProposal.objects.filter(policy_id=version.policy_id, status=ProposalStatus.PENDING).update(
            status=ProposalStatus.SUPERSEDED, decided_at=timezone.now()
        )
        proposal = ThresholdProposal.objects.create(
            policy_id=version.policy_id,
            model_version=version,
            model_name=version.model_name,
            target_precision=precision,
            target_recall=recall,
            auto_action=round(action.threshold, 4) if action else None,
            auto_clear=round(clear.threshold, 4) if clear else None,
            current_auto_action=rule.auto_action if rule else None,
            current_auto_clear=rule.auto_clear if rule else None,
            estimates=finite_or_none(estimates),
        )
        audit_record(
            actor=actor,
            action="threshold_proposal.created",
            object_type="threshold_proposal",
            object_id=proposal.pk,
            after={"auto_action": proposal.auto_action, "auto_clear": proposal.auto_clear, "model": version.model_name},
        )
    return proposal


def _scored(version: ModelVersion, data: HeldOut, stratum: str, split: str) -> dict[str, Any]:
    """Scores, truth and weights of one stratum of a split, with where they come from."""
    rows, weights = data.stratum(stratum)
    scores = np.zeros(0)
    if len(rows):
        probs = head_probs(version, data.restrict(rows).features)
        scores = probs[:, version.head_labels.index(version.positive_label)]
    positive = _positives(version, data.gold.y_eval[rows])
    return {"scores": scores, "positive": positive, "weights": weights, "stratum": stratum, "split": split}


def _summary(scored: dict[str, Any]) -> dict[str, Any]:
    weights = scored["weights"]
    return {
        "split": scored["split"],
        "stratum": scored["stratum"],
        "weighted": scored["stratum"] == TRAFFIC,
        "n": len(weights),
        "n_eff": effective_n(weights),
        "positives": int(scored["positive"].sum()),
    }


def _measured(
    version: ModelVersion, test: dict[str, Any], action: ThresholdPoint | None, clear: ThresholdPoint | None
) -> dict[str, Any]:
    """The chosen thresholds' figures on the test stratum, with intervals."""
    n_bootstrap = int(version.training_run.params.get("n_bootstrap", settings.AL_BOOTSTRAP))
    out: dict[str, Any] = {**_summary(test), "n_bootstrap": n_bootstrap}
    for side, point in (("action", action), ("clear", clear)):
        out[side] = (
            threshold_figures(
                test["scores"],
                test["positive"],
                point.threshold,
                side=side,
                weights=test["weights"],
                n_bootstrap=n_bootstrap,
                seed=version.pk,
            )
            if point is not None and len(test["scores"])
            else None
        )
    return out


def threshold_sources(estimates: dict[str, Any]) -> dict[str, Any]:
    """Where a proposal's figures come from, in words, for the page and the API.

    Proposals made before thresholds were chosen on dev carry only test figures (`n`, `action`,
    `clear` at the top level): they were chosen and measured on the same test items, all strata.
    """
    if "chosen_on" not in estimates:
        label = figure_label("test", ALL, n=int(estimates.get("n") or 0))
        return {"chosen_on": label, "measured_on": label, "chosen_on_test": True}
    return {
        "chosen_on": _label(estimates["chosen_on"]),
        "measured_on": _label(estimates["measured_on"]),
        "chosen_on_test": False,
    }


def _label(part: dict[str, Any]) -> str:
    return figure_label(
        part["split"], part["stratum"], n=part["n"], n_eff=part.get("n_eff") or 0.0, weighted=part["weighted"]
    )


def _positives(version: ModelVersion, y: np.ndarray) -> np.ndarray:
    index = version.classes.index(version.positive_label)
    return y[:, index].astype(bool) if version.task == "multilabel" else y == index


def threshold_proposal_approve(*, proposal_id: int, lead: User, note: str = "") -> RoutingRule:
    """Apply a pending proposal to the routing rule of its model name; audit before/after.

    Locks the proposal, then the rule (creating it from the policy's '*' rule when missing).
    Raises ProposalClosed if it was decided meanwhile, ValidationError if no rule can be made.
    """
    actor = Actor.of(lead)
    with transaction.atomic():
        proposal = ThresholdProposal.objects.select_for_update().get(pk=proposal_id)
        if proposal.status != ProposalStatus.PENDING:
            raise ProposalClosed(f"this proposal is already {proposal.status}")
        rule = (
            RoutingRule.objects.select_for_update()
            .filter(policy_id=proposal.policy_id, model_name=proposal.model_name)
            .first()
        )
        rule = rule or _rule_from_default(proposal, actor)
        before = {"auto_clear": rule.auto_clear, "auto_action": rule.auto_action}
        rule.auto_clear, rule.auto_action = proposal.auto_clear, proposal.auto_action
        rule.save(update_fields=["auto_clear", "auto_action", "updated_at"])
        proposal.status, proposal.decided_by, proposal.decided_at = ProposalStatus.APPROVED, lead, timezone.now()
        proposal.note = note
        proposal.save(update_fields=["status", "decided_by", "decided_at", "note"])
        audit_record(
            actor=actor,
            action="routing_rule.thresholds_changed",
            object_type="routing_rule",
            object_id=rule.pk,
            before=before,
            after={
                "auto_clear": rule.auto_clear,
                "auto_action": rule.auto_action,
                "threshold_proposal": proposal.pk,
                "note": note,
            },
        )
    return rule


def _rule_from_default(proposal: ThresholdProposal, actor: Actor) -> RoutingRule:
    """A rule for the proposal's model, copied from the policy's `*` rule; a policy without one (its
    items came from a dataset import) gets the queue its rounds send work to, with no audit sample."""
    default = RoutingRule.objects.filter(policy_id=proposal.policy_id, model_name=RoutingRule.ANY_MODEL).first()
    if default is not None:
        queue, audit_queue = default.queue, default.audit_queue
        rates = {"audit_rate_clear": default.audit_rate_clear, "audit_rate_action": default.audit_rate_action}
    else:
        queue, audit_queue, rates = review_queue_for(proposal.policy), None, {}
    if queue is None:
        raise ValidationError(
            f"no routing rule for {proposal.model_name}, no default ('*') rule and no review queue holding "
            "this policy's items: create a routing rule for the policy in the admin first"
        )
    rule = RoutingRule.objects.create(
        policy_id=proposal.policy_id, model_name=proposal.model_name, queue=queue, audit_queue=audit_queue, **rates
    )
    audit_record(
        actor=actor,
        action="routing_rule.created",
        object_type="routing_rule",
        object_id=rule.pk,
        after={"policy_id": rule.policy_id, "model_name": rule.model_name, "queue_id": rule.queue_id},
    )
    return rule


def threshold_proposal_reject(*, proposal_id: int, lead: User, note: str = "") -> ThresholdProposal:
    """Close a pending proposal without changing routing. Locks the proposal."""
    with transaction.atomic():
        proposal = ThresholdProposal.objects.select_for_update().get(pk=proposal_id)
        if proposal.status != ProposalStatus.PENDING:
            raise ProposalClosed(f"this proposal is already {proposal.status}")
        proposal.status, proposal.decided_by, proposal.decided_at = ProposalStatus.REJECTED, lead, timezone.now()
        proposal.note = note
        proposal.save(update_fields=["status", "decided_by", "decided_at", "note"])
        audit_record(
            actor=Actor.of(lead),
            action="threshold_proposal.rejected",
            object_type="threshold_proposal",
            object_id=proposal.pk,
            after={"status": proposal.status, "note": note},
        )
    return proposal
