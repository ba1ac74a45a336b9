"""Queues and routing rules, as leads run them: settings, members, thresholds, and what a change would do.

Every change is checked against the model's constraints first (`check_queue_settings`,
`check_routing_rule`), so a bad value comes back as a ValidationError naming the field instead
of a database refusal; each change locks its row, writes only when something changed, and
records the before/after in the audit trail in the same transaction. A queue is never deleted:
it is deactivated (`is_active`), since tasks, decisions and audit events refer to it.

`routing_volume_estimate` answers "what would this rule have done to the last week of traffic",
read before a routing change is saved: the policy's decisions the rule governs (the same
precedence as ingest: a model-specific rule over the policy's '*' rule), routed by the thresholds
in force and by the proposed ones. Shadow decisions routed nothing and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from labeling.models import Policy

from ..audit import Actor, audit_record
from ..models import ConsensusRule, ModelDecision, Queue, QueueKind, RoutingOutcome, RoutingRule

ESTIMATE_DAYS = 7

# The queue settings a lead edits (slug only on creation: it names the queue in URLs and imports).
QUEUE_FIELDS = (
    "name",
    "description",
    "kind",
    "sla_minutes",
    "lease_seconds",
    "required_annotations",
    "adaptive",
    "max_annotations",
    "consensus_rule",
    "min_margin",
    "min_confidence",
    "auto_gold",
    "blind_review",
    "honeypot_rate",
    "graphic_daily_cap",
    "onboarding_size",
    "onboarding_pass_mark",
    "pause_below_accuracy",
    "pause_window",
    "show_author_history",
    "is_active",
)
RULE_FIELDS = ("auto_clear", "auto_action", "audit_rate_clear", "audit_rate_action", "queue_id", "audit_queue_id")
MAX_ANNOTATIONS = 5
MAX_ONBOARDING = 200
MAX_PAUSE_WINDOW = 500
MAX_SLA_MINUTES = 60 * 24 * 365
MAX_LEASE_SECONDS = 60 * 60 * 24
MAX_GRAPHIC_CAP = 10_000


# --- checks: the model's constraints, as messages per field -------------------------------------


def check_queue_settings(values: dict[str, Any]) -> None:
    """Raise a ValidationError naming every field of `values` (a full set of QUEUE_FIELDS) that the
    queue's check constraints, or plain sense, refuse."""
    errors: dict[str, str] = {}
    if not str(values["name"]).strip():
        errors["name"] = "Give the queue a name."
    if values["kind"] not in QueueKind.values:
        errors["kind"] = f"Choose one of: {', '.join(QueueKind.values)}."
    if values["consensus_rule"] not in ConsensusRule.values:
        errors["consensus_rule"] = f"Choose one of: {', '.join(ConsensusRule.values)}."
    if not 1 <= values["sla_minutes"] <= MAX_SLA_MINUTES:
        errors["sla_minutes"] = f"Between 1 and {MAX_SLA_MINUTES} minutes."
    if not 30 <= values["lease_seconds"] <= MAX_LEASE_SECONDS:
        errors["lease_seconds"] = f"At least 30 seconds (a reviewer needs time to read), at most {MAX_LEASE_SECONDS}."
    required, most = values["required_annotations"], values["max_annotations"]
    if not 1 <= required <= MAX_ANNOTATIONS:
        errors["required_annotations"] = f"Between 1 and {MAX_ANNOTATIONS} reviewers per item."
    if most > MAX_ANNOTATIONS:
        errors["max_annotations"] = f"At most {MAX_ANNOTATIONS} reviewers per item."
    elif most < required:
        errors["max_annotations"] = (
            f"Cannot be below the required annotations ({required}): the most reviewers an item may get "
            "includes the required ones."
        )
    if not 0 <= values["min_margin"] < 1:
        errors["min_margin"] = "A share from 0 up to (not including) 1."
    if not 0 < values["min_confidence"] <= 1:
        errors["min_confidence"] = "A probability above 0, at most 1."
    if not 0 <= values["honeypot_rate"] < 1:
        errors["honeypot_rate"] = "A share from 0 up to (not including) 1: 0.05 serves one check in twenty."
    cap = values["graphic_daily_cap"]
    if cap is not None and not 0 <= cap <= MAX_GRAPHIC_CAP:
        errors["graphic_daily_cap"] = f"Between 0 and {MAX_GRAPHIC_CAP} items a day; leave it empty for no cap."
    if not 0 <= values["onboarding_size"] <= MAX_ONBOARDING:
        errors["onboarding_size"] = f"Between 0 (no onboarding) and {MAX_ONBOARDING} items."
    if not 0 < values["onboarding_pass_mark"] <= 1:
        errors["onboarding_pass_mark"] = "A share above 0, at most 1: 0.8 means four answers in five right."  # noqa: S105 (a pass mark, not a password)
    pause = values["pause_below_accuracy"]
    if pause is not None and not 0 < pause <= 1:
        errors["pause_below_accuracy"] = "An accuracy above 0, at most 1; leave it empty never to pause."
    if not 1 <= values["pause_window"] <= MAX_PAUSE_WINDOW:
        errors["pause_window"] = f"Between 1 and {MAX_PAUSE_WINDOW} honeypot answers."
    if errors:
        raise ValidationError(errors)


def check_routing_rule(values: dict[str, Any]) -> None:
    """Raise a ValidationError naming every field of `values` (RULE_FIELDS by their form names:
    queue and audit_queue as Queue objects) the routing rule's constraints refuse."""
    errors: dict[str, str] = {}
    clear, action = values["auto_clear"], values["auto_action"]
    for name, threshold in (("auto_clear", clear), ("auto_action", action)):
        if threshold is not None and not 0 <= threshold <= 1:
            errors[name] = "A score from 0 to 1; leave it empty to turn this automatic outcome off."
    if "auto_clear" not in errors and "auto_action" not in errors and None not in (clear, action) and clear >= action:
        errors["auto_clear"] = (
            f"The auto-clear threshold ({clear:g}) must be below the auto-action threshold ({action:g}): "
            "scores between them go to human review."
        )
    for name in ("audit_rate_clear", "audit_rate_action"):
        if not 0 <= values[name] <= 1:
            errors[name] = "A share from 0 to 1: 0.02 sends one automatic decision in fifty to the audit queue."
    for name in ("queue", "audit_queue"):
        queue = values.get(name)
        if queue is not None and not queue.is_active:
            errors[name] = f"Queue {queue.slug} is inactive: activate it first, or choose another."
    if values.get("queue") is None:
        errors["queue"] = "Choose the queue that reviews the uncertain band."
    if errors:
        raise ValidationError(errors)


def check_thresholds(rule: Thresholds) -> None:
    """The threshold and rate checks of `check_routing_rule`, for an estimate (no queue involved)."""
    values = {**vars(rule), "queue": None, "audit_queue": None}
    try:
        check_routing_rule(values)
    except ValidationError as error:
        errors = {field: messages for field, messages in error.message_dict.items() if field != "queue"}
        if errors:
            raise ValidationError(errors) from None


# --- queues -------------------------------------------------------------------------------------


def _queue_state(queue: Queue) -> dict[str, Any]:
    return {field: getattr(queue, field) for field in ("slug", *QUEUE_FIELDS)}


def _changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    changed = [key for key in after if before.get(key) != after[key]]
    return {key: before.get(key) for key in changed}, {key: after[key] for key in changed}


def _queue_defaults() -> dict[str, Any]:
    blank = Queue()
    return {field: getattr(blank, field) for field in QUEUE_FIELDS}


def queue_create(*, slug: str, actor: Actor, **settings: Any) -> Queue:
    """Create a queue with `settings` (any of QUEUE_FIELDS; the model's defaults for the rest).

    Raises ValidationError for a taken slug or a setting the constraints refuse. Audited
    (`queue.created`, the full settings)."""
    values = {**_queue_defaults(), **settings}
    check_queue_settings(values)
    try:
        with transaction.atomic():
            if Queue.objects.filter(slug=slug).exists():
                raise ValidationError({"slug": f"A queue with the slug {slug!r} exists already."})
            queue = Queue(slug=slug, **values)
            queue.full_clean(validate_unique=False, validate_constraints=False)
            queue.save(force_insert=True)
            audit_record(
                actor=actor, action="queue.created", object_type="queue", object_id=queue.pk, after=_queue_state(queue)
            )
    except IntegrityError:
        if not Queue.objects.filter(slug=slug).exists():
            raise
        # another lead created the same slug at the same moment
        raise ValidationError({"slug": f"A queue with the slug {slug!r} exists already."}) from None
    return queue


def queue_update(*, queue_id: int, actor: Actor, **settings: Any) -> Queue:
    """Change some of a queue's settings (QUEUE_FIELDS); deactivate with `is_active=False`.

    Locks the queue row so two leads' edits apply one after the other, each checked against the
    other's result. Raises ValidationError when the settings as they would be are refused.
    Audited (`queue.updated`, the changed fields before and after) when anything changed."""
    unknown = set(settings) - set(QUEUE_FIELDS)
    if unknown:
        raise ValidationError(f"Not a queue setting: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue_id)
        before = _queue_state(queue)
        check_queue_settings({field: settings.get(field, getattr(queue, field)) for field in QUEUE_FIELDS})
        for field, value in settings.items():
            setattr(queue, field, value)
        old, new = _changes(before, _queue_state(queue))
        if new:
            queue.save(update_fields=list(new))
            audit_record(
                actor=actor, action="queue.updated", object_type="queue", object_id=queue.pk, before=old, after=new
            )
    return queue


def _member_user(username: str) -> User:
    user = User.objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ValidationError({"username": f"No active user is called {username.strip()!r}."})
    return user


def queue_member_add(*, queue_id: int, username: str, actor: Actor) -> bool:
    """Make the user called `username` a member of the queue; True if they were not one yet.

    Idempotent: adding a member again changes nothing and records nothing. Locks the queue row,
    so an add and a remove of the same person apply in order. Audited (`queue.member_added`)."""
    user = _member_user(username)
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue_id)
        if queue.members.filter(pk=user.pk).exists():
            return False
        queue.members.add(user)
        audit_record(
            actor=actor,
            action="queue.member_added",
            object_type="queue",
            object_id=queue.pk,
            before={"member": None},
            after={"member": user.get_username(), "user_id": user.pk},
        )
    return True


def queue_member_remove(*, queue_id: int, username: str, actor: Actor) -> bool:
    """Take the user called `username` off the queue; True if they were a member.

    Their open leases run out as usual; they claim nothing more here. Idempotent, locked and
    audited (`queue.member_removed`) as `queue_member_add`."""
    with transaction.atomic():
        queue = Queue.objects.select_for_update().get(pk=queue_id)
        user = queue.members.filter(username=username.strip()).first()
        if user is None:
            return False
        queue.members.remove(user)
        audit_record(
            actor=actor,
            action="queue.member_removed",
            object_type="queue",
            object_id=queue.pk,
            before={"member": user.get_username(), "user_id": user.pk},
            after={"member": None},
        )
    return True


# --- routing rules ------------------------------------------------------------------------------


def _rule_state(rule: RoutingRule) -> dict[str, Any]:
    return {"policy": rule.policy.key, "model_name": rule.model_name} | {f: getattr(rule, f) for f in RULE_FIELDS}


def _rule_values(values: dict[str, Any]) -> dict[str, Any]:
    audit_queue = values.get("audit_queue")
    return {
        "auto_clear": values["auto_clear"],
        "auto_action": values["auto_action"],
        "audit_rate_clear": values["audit_rate_clear"],
        "audit_rate_action": values["audit_rate_action"],
        "queue_id": values["queue"].pk,
        "audit_queue_id": audit_queue.pk if audit_queue is not None else None,
    }


def routing_rule_create(
    *,
    policy: Policy,
    model_name: str,
    auto_clear: float | None,
    auto_action: float | None,
    audit_rate_clear: float = 0.0,
    audit_rate_action: float = 0.0,
    queue: Queue,
    audit_queue: Queue | None = None,
    actor: Actor,
) -> RoutingRule:
    """A rule for (policy, model_name); '*' for every model of the policy without its own rule.

    Raises ValidationError when the pair has a rule already or a value is refused. Audited
    (`routing_rule.created`, the full rule)."""
    model_name = model_name.strip() or RoutingRule.ANY_MODEL
    values = {
        "auto_clear": auto_clear,
        "auto_action": auto_action,
        "audit_rate_clear": audit_rate_clear,
        "audit_rate_action": audit_rate_action,
        "queue": queue,
        "audit_queue": audit_queue,
    }
    check_routing_rule(values)
    taken = ValidationError({"model_name": f"Policy {policy.key} has a rule for {model_name!r} already: edit it."})
    try:
        with transaction.atomic():
            if RoutingRule.objects.filter(policy=policy, model_name=model_name).exists():
                raise taken
            rule = RoutingRule(policy=policy, model_name=model_name, **_rule_values(values))
            rule.save(force_insert=True)
            audit_record(
                actor=actor,
                action="routing_rule.created",
                object_type="routing_rule",
                object_id=rule.pk,
                after=_rule_state(rule),
            )
    except IntegrityError:  # the same pair created at the same moment
        raise taken from None
    return rule


def routing_rule_update(*, rule_id: int, actor: Actor, **values: Any) -> RoutingRule:
    """Change a rule's thresholds, audit rates and queues (its policy and model stay).

    `values` are the form names (queue and audit_queue as Queue objects); missing ones keep the
    rule's. Locks the rule row. Raises ValidationError when the result is refused. Audited
    (`routing_rule.updated`, changed fields before and after) when anything changed. Decisions
    already stored keep the thresholds they were routed by."""
    with transaction.atomic():
        rule = (
            RoutingRule.objects.select_for_update(of=("self",))
            .select_related("policy", "queue", "audit_queue")
            .get(pk=rule_id)
        )
        current = {
            "auto_clear": rule.auto_clear,
            "auto_action": rule.auto_action,
            "audit_rate_clear": rule.audit_rate_clear,
            "audit_rate_action": rule.audit_rate_action,
            "queue": rule.queue,
            "audit_queue": rule.audit_queue,
        }
        merged = {**current, **{key: value for key, value in values.items() if key in current}}
        check_routing_rule(merged)
        before = _rule_state(rule)
        for field, value in _rule_values(merged).items():
            setattr(rule, field, value)
        old, new = _changes(before, _rule_state(rule))
        if new:
            rule.save(update_fields=[*new, "updated_at"])
            audit_record(
                actor=actor,
                action="routing_rule.updated",
                object_type="routing_rule",
                object_id=rule.pk,
                before=old,
                after=new,
            )
    return rule


# --- the estimate -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    auto_clear: float | None
    auto_action: float | None
    audit_rate_clear: float
    audit_rate_action: float


@dataclass(frozen=True)
class Volume:
    """How a rule's thresholds would have routed the decisions: counts, and the audit samples
    expected from them (each automatic decision is sampled with the rule's rate)."""

    auto_actioned: int
    auto_cleared: int
    queued: int
    audit_expected: float

    @property
    def to_humans(self) -> float:
        return self.queued + self.audit_expected


@dataclass(frozen=True)
class VolumeEstimate:
    policy_key: str
    model_name: str
    since: datetime
    decisions: int
    current: Volume | None  # None: no rule governs these decisions now
    proposed: Volume
    current_rule_model: str | None  # the model name of the rule in force now ('*' or the model's own)


def _governed(policy: Policy, model_name: str, since: datetime) -> QuerySet[ModelDecision]:
    """The policy's decisions since `since` that a rule for `model_name` would route, as ingest
    picks rules: a model's own rule first, else the '*' rule. Shadow decisions routed nothing."""
    decisions = ModelDecision.objects.filter(policy=policy, received_at__gte=since).exclude(
        routing_outcome=RoutingOutcome.SHADOW
    )
    if model_name != RoutingRule.ANY_MODEL:
        return decisions.filter(model_name=model_name)
    own_rules = RoutingRule.objects.filter(policy=policy).exclude(model_name=RoutingRule.ANY_MODEL)
    return decisions.exclude(model_name__in=own_rules.values("model_name"))


def _band_aggregates(prefix: str, rule: Thresholds) -> dict[str, Count]:
    action = Q(score__gte=rule.auto_action) if rule.auto_action is not None else None
    clear = Q(score__lte=rule.auto_clear) if rule.auto_clear is not None else None
    if action is not None and clear is not None:
        clear &= ~action  # as route_score: the action threshold is tested first
    aggregates = {}
    if action is not None:
        aggregates[f"{prefix}_action"] = Count("pk", filter=action)
    if clear is not None:
        aggregates[f"{prefix}_clear"] = Count("pk", filter=clear)
    return aggregates


def _volume(prefix: str, rule: Thresholds, counts: dict[str, int]) -> Volume:
    actioned, cleared = counts.get(f"{prefix}_action", 0), counts.get(f"{prefix}_clear", 0)
    expected = actioned * rule.audit_rate_action + cleared * rule.audit_rate_clear
    return Volume(actioned, cleared, counts["total"] - actioned - cleared, round(expected, 2))


def routing_volume_estimate(
    *, policy: Policy, model_name: str, proposed: Thresholds, days: int = ESTIMATE_DAYS, now: datetime | None = None
) -> VolumeEstimate:
    """What the proposed thresholds for (policy, model_name) would have done to the last `days`
    days of decisions they govern, beside what the rule in force now does to the same decisions.

    Both are computed from the scores, so they compare like with like even when the rule changed
    within the window. One aggregate query over the (policy, received_at) index."""
    check_thresholds(proposed)
    model_name = model_name.strip() or RoutingRule.ANY_MODEL
    since = (now or timezone.now()) - timedelta(days=days)
    rules = {rule.model_name: rule for rule in RoutingRule.objects.filter(policy=policy)}
    in_force = rules.get(model_name) or rules.get(RoutingRule.ANY_MODEL)
    current = (
        Thresholds(in_force.auto_clear, in_force.auto_action, in_force.audit_rate_clear, in_force.audit_rate_action)
        if in_force is not None
        else None
    )
    aggregates: dict[str, Any] = {"total": Count("pk"), **_band_aggregates("proposed", proposed)}
    if current is not None:
        aggregates |= _band_aggregates("current", current)
    counts = _governed(policy, model_name, since).aggregate(**aggregates)
    return VolumeEstimate(
        policy_key=policy.key,
        model_name=model_name,
        since=since,
        decisions=counts["total"],
        current=_volume("current", current, counts) if current is not None else None,
        proposed=_volume("proposed", proposed, counts),
        current_rule_model=in_force.model_name if in_force is not None else None,
    )
