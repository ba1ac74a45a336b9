"""Routing-threshold proposals from held-out gold, and their approval by a lead.

For the champion of a policy, on the test split of current gold, with s = P(positive label):
- auto_action: the lowest threshold whose automatic enforcements (s ≥ t) reach the target
  precision — the most automation that precision allows;
- auto_clear: the highest threshold such that the items cleared automatically (s ≤ t) hold at
  most (1 − target recall) of all violations — violations must keep reaching people.
Either may be impossible on the data (then it is left empty, i.e. that automation stays off).
A proposal changes nothing until a lead approves it; approval writes the `RoutingRule` of the
model's name (created from the policy's default rule when missing) with an audit event.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.errors import Conflict
from reviewapp.models import RoutingRule

from ..models import ModelStatus, ModelVersion, ProposalStatus, ThresholdProposal
from .evaluation import held_out
from .numeric import finite_or_none, threshold_for_precision, threshold_for_recall
from .registry import head_probs

MIN_SUPPORT = 5  # items on an automatic side, below which a threshold is not proposed


class ProposalClosed(Conflict):
    """The proposal was already decided or superseded."""


def thresholds_propose(
    *,
    version_id: int,
    target_precision: float | None = None,
    target_recall: float | None = None,
    actor: Actor = SYSTEM,
) -> ThresholdProposal | None:
    """Propose thresholds for a champion; supersedes its policy's earlier pending proposals.

    Returns None for a version that is not the champion (only the deployed model routes).
    """
    version = ModelVersion.objects.select_related("policy").get(pk=version_id)
    if version.status != ModelStatus.CHAMPION:
        return None
    precision = target_precision or settings.AL_TARGET_PRECISION
    recall = target_recall or settings.AL_TARGET_RECALL
    data = held_out(version)
    scores = head_probs(version, data.features)[:, version.head_labels.index(version.positive_label)]
    positive = _positives(version, data.gold.y_eval)
    action = threshold_for_precision(scores, positive, precision, min_support=MIN_SUPPORT)
    clear = threshold_for_recall(scores, positive, recall, min_support=MIN_SUPPORT)
    if action is not None and clear is not None and clear.threshold >= action.threshold:
        clear = None  # the bands would overlap: keep enforcement, leave clearing to people
    rule = RoutingRule.objects.filter(policy_id=version.policy_id, model_name=version.model_name).first()
    estimates = {
        "n": len(scores),
        "positives": int(positive.sum()),
        "action": asdict(action) if action else None,
        "clear": asdict(clear) if clear else None,
        "gold_watermark": data.gold.watermark,
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
    default = RoutingRule.objects.filter(policy_id=proposal.policy_id, model_name=RoutingRule.ANY_MODEL).first()
    if default is None:
        raise ValidationError(
            f"no routing rule for {proposal.model_name} and no default ('*') rule to copy the queue from"
        )
    rule = RoutingRule.objects.create(
        policy_id=proposal.policy_id,
        model_name=proposal.model_name,
        queue=default.queue,
        audit_queue=default.audit_queue,
        audit_rate_clear=default.audit_rate_clear,
        audit_rate_action=default.audit_rate_action,
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
