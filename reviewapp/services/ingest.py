"""Ingest: upstream model decisions in, routed tasks out.

A batch is validated row by row in Python, then written with a handful of set-based statements
(`INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING`) in one transaction, so 1,000 rows cost
a few round trips rather than thousands. Rows are sorted by key before writing, so concurrent
batches that overlap take row locks in the same order and cannot deadlock each other.

Semantics (also in the API docs): per row. Valid rows are stored even when others in the batch
are not; invalid rows are reported by index and nothing of them is stored. A decision is
identified by (source, external_id, policy, model_name, model_version): sending it again creates
nothing and returns the outcome recorded the first time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from labeling.models import Policy, PolicyVersion

from ..audit import Actor, audit_event, audit_record_many
from ..models import Queue, RoutingRule, TaskReason
from .routing import Route, route_score, task_priority
from .validation import DecisionRow, ItemRow, RowError, check_decision_row


@dataclass
class IngestResult:
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(1 for result in self.results if result["status"] == "created")


@dataclass
class _Planned:
    index: int
    row: DecisionRow
    policy: Policy
    version_id: int | None
    rule: RoutingRule
    route: Route


def decisions_ingest(*, rows: Sequence[Any], actor: Actor) -> IngestResult:
    """Validate, store and route a batch of decisions. Idempotent per decision key.

    Opens its own transaction; call it outside any other. Locks: row locks on conflicting
    content items, decisions and open tasks, taken in key order.
    """
    result = IngestResult()
    checked = _check_rows(rows, result)
    planned = _plan_routes(checked, result)
    if planned:
        with transaction.atomic():
            _store(planned, actor, result)
    result.results.sort(key=lambda r: r["index"])
    result.errors.sort(key=lambda e: e["index"])
    return result


def _check_rows(rows: Sequence[Any], result: IngestResult) -> list[tuple[int, DecisionRow]]:
    checked: list[tuple[int, DecisionRow]] = []
    first_index: dict[tuple[str, ...], tuple[int, float]] = {}
    for index, raw in enumerate(rows):
        try:
            row = check_decision_row(raw)
        except RowError as error:
            result.errors.append({"index": index, "field": error.field, "message": error.message})
            continue
        seen = first_index.get(row.key)
        if seen is not None and seen[1] != row.score:
            message = f"same decision as row {seen[0]} with a different score"
            result.errors.append({"index": index, "field": "score", "message": message})
            continue
        if seen is None:
            first_index[row.key] = (index, row.score)
        checked.append((index, row))
    return checked


def _plan_routes(checked: list[tuple[int, DecisionRow]], result: IngestResult) -> list[_Planned]:
    keys = {row.policy_key for _, row in checked}
    policies = {p.key: p for p in Policy.objects.filter(key__in=keys, is_active=True)}
    versions = _current_version_ids(policies.values())
    rules = {
        (rule.policy_id, rule.model_name): rule
        for rule in RoutingRule.objects.filter(policy__in=policies.values())
    }
    planned = []
    for index, row in checked:
        policy = policies.get(row.policy_key)
        if policy is None:
            message = f"unknown policy {row.policy_key!r}"
            result.errors.append({"index": index, "field": "policy", "message": message})
            continue
        rule = rules.get((policy.pk, row.model_name)) or rules.get((policy.pk, RoutingRule.ANY_MODEL))
        if rule is None:
            message = f"no routing rule for policy {policy.key!r} and model {row.model_name!r}"
            result.errors.append({"index": index, "field": "model_name", "message": message})
            continue
        sample_key = "\x1f".join(row.key)
        route = route_score(score=row.score, rule=rule, sample_key=sample_key)
        planned.append(_Planned(index, row, policy, versions.get(policy.pk), rule, route))
    return planned


def _current_version_ids(policies: Any) -> dict[int, int]:
    current = (
        PolicyVersion.objects.filter(policy__in=list(policies), effective_at__lte=timezone.now())
        .order_by("policy_id", "-number")
        .distinct("policy_id")
        .values_list("policy_id", "id")
    )
    return dict(current)


def _store(planned: list[_Planned], actor: Actor, result: IngestResult) -> None:
    planned.sort(key=lambda p: p.row.key)
    item_ids = upsert_items([p.row.item for p in planned])
    decisions = _insert_decisions(planned, item_ids)
    new = [p for p in planned if decisions[_decision_key(p, item_ids)]["created"]]
    tasks = _insert_decision_tasks(new, item_ids, decisions)
    events = []
    seen_decisions: set[int] = set()
    for p in planned:
        stored = decisions[_decision_key(p, item_ids)]
        if stored["score"] != p.row.score:
            message = f"this decision was already recorded with score {stored['score']}; send a new model_version to re-score"
            result.errors.append({"index": p.index, "field": "score", "message": message})
            continue
        decision_id = stored["id"]
        created = stored["created"] and decision_id not in seen_decisions
        seen_decisions.add(decision_id)
        task_id = tasks.get(decision_id) if stored["created"] else stored["task_id"]
        result.results.append(
            {
                "index": p.index,
                "status": "created" if created else "duplicate",
                "item_id": item_ids[(p.row.item.source, p.row.item.external_id)],
                "decision_id": decision_id,
                "routing_outcome": stored["routing_outcome"],
                "audit_sampled": stored["audit_sampled"],
                "task_id": task_id,
            }
        )
        if created:
            events.extend(_ingest_events(p, stored, task_id, actor, item_ids))
    audit_record_many(events)


def _ingest_events(p: _Planned, stored: dict[str, Any], task_id: int | None, actor: Actor, item_ids: dict) -> list:
    item_id = item_ids[(p.row.item.source, p.row.item.external_id)]
    decision_after = {
        "policy": p.policy.key,
        "model": f"{p.row.model_name}@{p.row.model_version}",
        "score": p.row.score,
        "routing_outcome": p.route.outcome,
        "audit_sampled": p.route.audit_sampled,
        "sampling_propensity": p.route.sampling_propensity,
    }
    events = [
        audit_event(actor=actor, action="decision.ingested", object_type="decision",
                    object_id=stored["id"], item_id=item_id, after=decision_after)
    ]
    if task_id is not None:
        task_after = {"queue_id": p.route.queue_id, "reason": p.route.task_reason, "status": "open"}
        events.append(
            audit_event(actor=actor, action="task.created", object_type="task",
                        object_id=task_id, item_id=item_id, after=task_after)
        )
    return events


def _decision_key(p: _Planned, item_ids: dict) -> tuple[int, int, str, str]:
    item_id = item_ids[(p.row.item.source, p.row.item.external_id)]
    return (item_id, p.policy.pk, p.row.model_name, p.row.model_version)


def upsert_items(items: Sequence[ItemRow]) -> dict[tuple[str, str], int]:
    """Insert items that are new and return ids for all. Existing items are left unchanged.

    Call inside a transaction. The first version of an item that arrives is the one kept:
    content is evidence and is never rewritten by a later message.
    """
    unique: dict[tuple[str, str], ItemRow] = {}
    for item in items:
        unique.setdefault((item.source, item.external_id), item)
    rows = [unique[key] for key in sorted(unique)]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO reviewapp_contentitem
                (source, external_id, modality, title, text, media_urls, context, metadata, reach, embedding)
            SELECT u.source, u.external_id, u.modality, u.title, u.text, u.media_urls::jsonb,
                   u.context::jsonb, u.metadata::jsonb, u.reach, u.embedding::float8[]
            FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
                        %s::text[], %s::text[], %s::bigint[], %s::text[])
                 AS u(source, external_id, modality, title, text, media_urls, context, metadata, reach, embedding)
            ON CONFLICT (source, external_id) DO NOTHING
            """,
            [
                [r.source for r in rows],
                [r.external_id for r in rows],
                [r.modality for r in rows],
                [r.title for r in rows],
                [r.text for r in rows],
                [json.dumps(r.media_urls) for r in rows],
                [json.dumps(r.context) for r in rows],
                [json.dumps(r.metadata) for r in rows],
                [r.reach for r in rows],
                [_pg_float_array(r.embedding) for r in rows],
            ],
        )
        cursor.execute(
            """
            SELECT c.id, c.source, c.external_id FROM reviewapp_contentitem c
            JOIN unnest(%s::text[], %s::text[]) AS k(source, external_id)
              ON c.source = k.source AND c.external_id = k.external_id
            """,
            [[r.source for r in rows], [r.external_id for r in rows]],
        )
        return {(source, external_id): item_id for item_id, source, external_id in cursor.fetchall()}


def _pg_float_array(values: list[float] | None) -> str | None:
    if values is None:
        return None
    return "{" + ",".join(repr(v) for v in values) + "}"


def _insert_decisions(planned: list[_Planned], item_ids: dict) -> dict[tuple, dict[str, Any]]:
    """Insert new decisions; return every planned decision's stored state keyed by identity."""
    fresh: dict[tuple, _Planned] = {}
    for p in planned:
        fresh.setdefault(_decision_key(p, item_ids), p)
    rows = list(fresh.values())
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO reviewapp_modeldecision
                (item_id, policy_id, policy_version_id, model_name, model_version, score, predicted_label,
                 evidence_spans, routing_rule_id, routing_outcome, auto_clear_threshold,
                 auto_action_threshold, audit_sampled, sampling_propensity, decided_at)
            SELECT u.item_id, u.policy_id, u.version_id, u.model_name, u.model_version, u.score, u.label,
                   u.spans::jsonb, u.rule_id, u.outcome, u.auto_clear, u.auto_action, u.sampled,
                   u.propensity, u.decided_at
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::float8[],
                        %s::text[], %s::text[], %s::bigint[], %s::text[], %s::float8[], %s::float8[],
                        %s::boolean[], %s::float8[], %s::timestamptz[])
                 AS u(item_id, policy_id, version_id, model_name, model_version, score, label, spans,
                      rule_id, outcome, auto_clear, auto_action, sampled, propensity, decided_at)
            ON CONFLICT (item_id, policy_id, model_name, model_version) DO NOTHING
            RETURNING id, item_id, policy_id, model_name, model_version
            """,
            [
                [item_ids[(p.row.item.source, p.row.item.external_id)] for p in rows],
                [p.policy.pk for p in rows],
                [p.version_id for p in rows],
                [p.row.model_name for p in rows],
                [p.row.model_version for p in rows],
                [p.row.score for p in rows],
                [p.row.predicted_label for p in rows],
                [json.dumps(p.row.evidence_spans) for p in rows],
                [p.rule.pk for p in rows],
                [p.route.outcome for p in rows],
                [p.rule.auto_clear for p in rows],
                [p.rule.auto_action for p in rows],
                [p.route.audit_sampled for p in rows],
                [p.route.sampling_propensity for p in rows],
                [p.row.decided_at for p in rows],
            ],
        )
        stored: dict[tuple, dict[str, Any]] = {}
        for decision_id, item_id, policy_id, model_name, model_version in cursor.fetchall():
            p = fresh[(item_id, policy_id, model_name, model_version)]
            stored[(item_id, policy_id, model_name, model_version)] = {
                "id": decision_id, "created": True, "score": p.row.score, "task_id": None,
                "routing_outcome": p.route.outcome, "audit_sampled": p.route.audit_sampled,
            }
        missing = [key for key in fresh if key not in stored]
        if missing:
            stored.update(_existing_decisions(cursor, missing))
    return stored


def _existing_decisions(cursor: Any, keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
    cursor.execute(
        """
        SELECT d.id, d.item_id, d.policy_id, d.model_name, d.model_version, d.score,
               d.routing_outcome, d.audit_sampled,
               (SELECT min(t.id) FROM reviewapp_reviewtask t WHERE t.decision_id = d.id)
        FROM reviewapp_modeldecision d
        JOIN unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[])
             AS k(item_id, policy_id, model_name, model_version)
          ON d.item_id = k.item_id AND d.policy_id = k.policy_id
         AND d.model_name = k.model_name AND d.model_version = k.model_version
        """,
        [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys]],
    )
    return {
        (item_id, policy_id, model_name, model_version): {
            "id": decision_id, "created": False, "score": score, "task_id": task_id,
            "routing_outcome": outcome, "audit_sampled": sampled,
        }
        for decision_id, item_id, policy_id, model_name, model_version, score, outcome, sampled, task_id
        in cursor.fetchall()
    }


def _insert_decision_tasks(new: list[_Planned], item_ids: dict, decisions: dict) -> dict[int, int]:
    """Create the review/audit tasks of newly stored decisions; map decision id → task id."""
    wanted = [p for p in new if p.route.queue_id is not None]
    queues = Queue.objects.in_bulk({p.route.queue_id for p in wanted})
    specs = [
        TaskSpec(
            item_id=item_ids[(p.row.item.source, p.row.item.external_id)],
            policy_id=p.policy.pk,
            queue=queues[p.route.queue_id],
            reason=p.route.task_reason or TaskReason.LOW_CONFIDENCE,
            priority=task_priority(severity_weight=p.policy.severity_weight, score=p.row.score, reach=p.row.item.reach),
            sampling_propensity=p.route.sampling_propensity,
            decision_id=decisions[_decision_key(p, item_ids)]["id"],
        )
        for p in wanted
    ]
    created = insert_tasks(specs)
    return {spec.decision_id: task_id for spec, task_id in created if spec.decision_id is not None}


@dataclass
class TaskSpec:
    item_id: int
    policy_id: int
    queue: Queue
    reason: str
    priority: float
    sampling_propensity: float = 1.0
    decision_id: int | None = None


def insert_tasks(specs: Sequence[TaskSpec]) -> list[tuple[TaskSpec, int]]:
    """Open tasks for specs that have no open task yet in the same (item, policy, queue).

    Call inside a transaction. Due times come from the database clock plus the queue's SLA.
    Returns (spec, new task id) for the tasks actually created.
    """
    if not specs:
        return []
    ordered = sorted(specs, key=lambda s: (s.item_id, s.policy_id, s.queue.pk))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO reviewapp_reviewtask
                (item_id, policy_id, decision_id, queue_id, reason, priority, due_at,
                 sampling_propensity, status)
            SELECT u.item_id, u.policy_id, u.decision_id, u.queue_id, u.reason, u.priority,
                   now() + make_interval(mins => u.sla_minutes), u.propensity, 'open'
            FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::text[],
                        %s::float8[], %s::int[], %s::float8[])
                 AS u(item_id, policy_id, decision_id, queue_id, reason, priority, sla_minutes, propensity)
            ON CONFLICT (item_id, policy_id, queue_id) WHERE status = 'open' DO NOTHING
            RETURNING id, item_id, policy_id, queue_id
            """,
            [
                [s.item_id for s in ordered],
                [s.policy_id for s in ordered],
                [s.decision_id for s in ordered],
                [s.queue.pk for s in ordered],
                [s.reason for s in ordered],
                [s.priority for s in ordered],
                [s.queue.sla_minutes for s in ordered],
                [s.sampling_propensity for s in ordered],
            ],
        )
        by_key = {(s.item_id, s.policy_id, s.queue.pk): s for s in ordered}
        return [(by_key[(i, p, q)], task_id) for task_id, i, p, q in cursor.fetchall()]
