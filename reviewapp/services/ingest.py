"""Ingest: upstream model decisions in, routed tasks out.

A batch is validated row by row in Python, then COPYed into per-connection staging tables and
written with a few set-based statements (`INSERT … SELECT … ON CONFLICT DO NOTHING`), audit
events included, in one transaction: 1,000 rows cost a handful of round trips and no per-row
Python on the database side. Rows are inserted in key order, so concurrent batches that overlap
take row locks in the same order and cannot deadlock each other.

Semantics (also in the API docs): per row. Valid rows are stored even when others in the batch
are not; invalid rows are reported by index and nothing of them is stored. A decision is
identified by (source, external_id, policy, model_name, model_version): sending it again creates
nothing and returns the outcome recorded the first time.

Content items this call creates are announced after commit with `reviewapp.signals.content_ingested`,
so the apps built on reviewapp (in-app model scoring) can take them up without reviewapp importing them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from django.db import DataError, IntegrityError, connection, transaction
from django.db.models.functions import Now

from labeling.models import Policy, PolicyVersion

from .. import metrics
from ..audit import Actor
from ..context import current_request_id
from ..db import copy_rows, stage_table
from ..models import ContentItem, ModelDecision, Queue, RoutingOutcome, RoutingRule, TaskReason
from ..signals import content_ingested, decisions_enforced
from .routing import Route, route_score, task_priority
from .tasks import TaskSpec, review_task_open
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
    route_queue: Queue | None


def decisions_ingest(*, rows: Sequence[Any], actor: Actor, shadow: bool = False) -> IngestResult:
    """Validate, store and route a batch of decisions. Idempotent per decision key.

    Opens its own transaction (a savepoint when called inside one). Locks: row locks on conflicting
    content items, decisions and open tasks, taken in key order. With `shadow`, the decisions come
    from a model in shadow: stored with the thresholds of their rule but routed nowhere
    (`RoutingOutcome.SHADOW`: no task, no automatic action, no audit sample).
    """
    result = IngestResult()
    checked = _check_rows(rows, result)
    planned = _plan_routes(checked, result, shadow=shadow)
    if planned:
        with transaction.atomic():
            _store_isolating(planned, actor, result)
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


# Nobody is sent a shadow decision, so its propensity of reaching a person is 0.
SHADOW_ROUTE = Route(RoutingOutcome.SHADOW, False, 0.0, None, None)


def _plan_routes(checked: list[tuple[int, DecisionRow]], result: IngestResult, *, shadow: bool) -> list[_Planned]:
    keys = {row.policy_key for _, row in checked}
    policies = {p.key: p for p in Policy.objects.filter(key__in=keys, is_active=True)}
    versions = _current_version_ids(policies.values())
    rules = {
        (rule.policy_id, rule.model_name): rule for rule in RoutingRule.objects.filter(policy__in=policies.values())
    }
    queue_ids = {rule.queue_id for rule in rules.values()} | {rule.audit_queue_id for rule in rules.values()}
    queues = Queue.objects.in_bulk(queue_ids - {None})
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
        route = SHADOW_ROUTE if shadow else route_score(score=row.score, rule=rule, sample_key=sample_key)
        queue = queues[route.queue_id] if route.queue_id is not None else None
        planned.append(_Planned(index, row, policy, versions.get(policy.pk), rule, route, queue))
    return planned


def _current_version_ids(policies: Any) -> dict[int, int]:
    current = (
        PolicyVersion.objects.filter(policy__in=list(policies), effective_at__lte=Now())
        .order_by("policy_id", "-number")
        .distinct("policy_id")
        .values_list("policy_id", "id")
    )
    return dict(current)


# What a row's own values can make PostgreSQL (or psycopg, encoding them) refuse. Validation is
# meant to leave none of these; should one slip through, it costs that row, not the batch.
ROW_REFUSED = (DataError, IntegrityError, psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError)


def _store_isolating(planned: list[_Planned], actor: Actor, result: IngestResult) -> None:
    """Store `planned` set-based; when the database refuses the set, split it in halves, each in
    a savepoint, until every refused row is reported on its own and every other row is stored.

    Call inside a transaction. One bad row among n costs about 2·log2(n) extra attempts."""
    attempt = IngestResult()
    try:
        with transaction.atomic():  # a savepoint: a refused attempt leaves nothing behind
            _store(planned, actor, attempt)
    except ROW_REFUSED as error:
        if len(planned) == 1:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            message = f"the database refused this row: {reason[:300]}"
            result.errors.append({"index": planned[0].index, "field": "", "message": message})
            return
        middle = len(planned) // 2
        _store_isolating(planned[:middle], actor, result)
        _store_isolating(planned[middle:], actor, result)
        return
    result.results.extend(attempt.results)
    result.errors.extend(attempt.errors)


def _store(planned: list[_Planned], actor: Actor, result: IngestResult) -> None:
    inserted: set[int] = set()
    item_ids = content_items_upsert(items=[p.row.item for p in planned], created=inserted)
    if inserted:
        new_items = sorted(inserted)
        transaction.on_commit(lambda: content_ingested.send(sender=ContentItem, item_ids=new_items))
    keyed = {p.index: _decision_key(p, item_ids) for p in planned}
    new = _insert_decisions(planned, keyed, actor)
    enforced = sorted(d["id"] for d in new.values() if d["routing_outcome"] == RoutingOutcome.AUTO_ACTION)
    if enforced:  # receivers write in this savepoint (webhook deliveries) and send after commit
        decisions_enforced.send(sender=ModelDecision, decision_ids=enforced)
    outcomes = Counter(decision["routing_outcome"] for decision in new.values())
    transaction.on_commit(lambda: [metrics.count("decisions_ingested", o, amount=n) for o, n in outcomes.items()])
    stored = {**_earlier_decisions(sorted(set(keyed.values()) - set(new))), **new}
    specs = [
        TaskSpec(
            item_id=keyed[p.index][0],
            policy_id=p.policy.pk,
            queue=p.route_queue,
            reason=p.route.task_reason or TaskReason.LOW_CONFIDENCE,
            priority=task_priority(severity_weight=p.policy.severity_weight, score=p.row.score, reach=p.row.item.reach),
            sampling_propensity=p.route.sampling_propensity,
            decision_id=new[keyed[p.index]]["id"],
        )
        for p in _first_per_key(planned, keyed)
        if keyed[p.index] in new and p.route_queue is not None
    ]
    tasks = {spec.decision_id: task_id for spec, task_id in review_task_open(specs=specs, actor=actor)}
    reported: set[int] = set()
    for p in planned:
        decision = stored[keyed[p.index]]
        if decision["score"] != p.row.score:
            message = (
                f"this decision was already recorded with score {decision['score']}; "
                "send a new model_version to re-score"
            )
            result.errors.append({"index": p.index, "field": "score", "message": message})
            continue
        created = keyed[p.index] in new and decision["id"] not in reported
        reported.add(decision["id"])
        result.results.append(
            {
                "index": p.index,
                "status": "created" if created else "duplicate",
                "item_id": keyed[p.index][0],
                "decision_id": decision["id"],
                "routing_outcome": decision["routing_outcome"],
                "audit_sampled": decision["audit_sampled"],
                "task_id": tasks.get(decision["id"], decision["task_id"]),
            }
        )


def _first_per_key(planned: list[_Planned], keyed: dict[int, tuple]) -> list[_Planned]:
    first: dict[tuple, _Planned] = {}
    for p in planned:
        first.setdefault(keyed[p.index], p)
    return list(first.values())


def _decision_key(p: _Planned, item_ids: dict) -> tuple[int, int, str, str]:
    item_id = item_ids[(p.row.item.source, p.row.item.external_id)]
    return (item_id, p.policy.pk, p.row.model_name, p.row.model_version)


ITEM_STAGE = """
    ord int, source text, external_id text, modality text, title text, text text, media_urls jsonb,
    context jsonb, metadata jsonb, reach bigint, embedding float8[], author_key text
"""
ITEM_COLUMNS = (
    "source",
    "external_id",
    "modality",
    "title",
    "text",
    "media_urls",
    "context",
    "metadata",
    "reach",
    "embedding",
    "author_key",
)


def content_items_upsert(*, items: Sequence[ItemRow], created: set[int] | None = None) -> dict[tuple[str, str], int]:
    """Insert items that are new and return ids for all. Existing items are left unchanged.

    Call inside a transaction. The first version of an item that arrives is the one kept:
    content is evidence and is never rewritten by a later message. `created`, when given,
    receives the ids of the items this call inserted.
    """
    stage_table("stage_items", ITEM_STAGE)
    copy_rows(
        "stage_items",
        ("ord", *ITEM_COLUMNS),
        (
            (
                ord_,
                r.source,
                r.external_id,
                r.modality,
                r.title,
                r.text,
                json.dumps(r.media_urls),
                json.dumps(r.context),
                json.dumps(r.metadata),
                r.reach,
                _pg_float_array(r.embedding),
                r.author_key,
            )
            for ord_, r in enumerate(items)
        ),
    )
    columns = ", ".join(ITEM_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO reviewapp_contentitem ({columns})
            SELECT DISTINCT ON (source, external_id) {columns} FROM stage_items
            ORDER BY source, external_id, ord
            ON CONFLICT (source, external_id) DO NOTHING
            RETURNING id
            """,  # noqa: S608 (only constant column names are interpolated)
        )
        if created is not None:
            created.update(item_id for (item_id,) in cursor.fetchall())
        cursor.execute(
            """
            SELECT DISTINCT c.id, c.source, c.external_id FROM stage_items s
            JOIN reviewapp_contentitem c ON c.source = s.source AND c.external_id = s.external_id
            """
        )
        return {(source, external_id): item_id for item_id, source, external_id in cursor.fetchall()}


def _pg_float_array(values: list[float] | None) -> str | None:
    if values is None:
        return None
    return "{" + ",".join(repr(v) for v in values) + "}"


DECISION_STAGE = """
    ord int, item_id bigint, policy_id bigint, policy_version_id bigint, model_name text,
    model_version text, score float8, predicted_label text, evidence_spans jsonb, decided_at timestamptz,
    routing_rule_id bigint, routing_outcome text, auto_clear_threshold float8,
    auto_action_threshold float8, audit_sampled boolean, sampling_propensity float8
"""
DECISION_COLUMNS = (
    "item_id",
    "policy_id",
    "policy_version_id",
    "model_name",
    "model_version",
    "score",
    "predicted_label",
    "evidence_spans",
    "decided_at",
    "routing_rule_id",
    "routing_outcome",
    "auto_clear_threshold",
    "auto_action_threshold",
    "audit_sampled",
    "sampling_propensity",
)


def _insert_decisions(planned: list[_Planned], keyed: dict[int, tuple], actor: Actor) -> dict[tuple, dict]:
    """Insert decisions not stored yet, with a `decision.ingested` audit event each.

    Returns the stored state of the decisions this call created, by decision key.
    """
    stage_table("stage_decisions", DECISION_STAGE)
    copy_rows(
        "stage_decisions",
        ("ord", *DECISION_COLUMNS),
        (
            (
                p.index,
                *keyed[p.index][:2],
                p.version_id,
                p.row.model_name,
                p.row.model_version,
                p.row.score,
                p.row.predicted_label,
                json.dumps(p.row.evidence_spans),
                p.row.decided_at,
                p.rule.pk,
                p.route.outcome,
                p.rule.auto_clear,
                p.rule.auto_action,
                p.route.audit_sampled,
                p.route.sampling_propensity,
            )
            for p in planned
        ),
    )
    columns = ", ".join(DECISION_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH new AS (
                INSERT INTO reviewapp_modeldecision ({columns})
                SELECT DISTINCT ON (item_id, policy_id, model_name, model_version) {columns}
                FROM stage_decisions ORDER BY item_id, policy_id, model_name, model_version, ord
                ON CONFLICT (item_id, policy_id, model_name, model_version) DO NOTHING
                RETURNING *
            ), audit AS (
                INSERT INTO reviewapp_auditevent
                    (actor_id, actor_label, action, object_type, object_id, item_id, after, request_id)
                SELECT %s, %s, 'decision.ingested', 'decision', new.id::text, new.item_id,
                       jsonb_build_object(
                           'policy_id', new.policy_id, 'model', new.model_name || '@' || new.model_version,
                           'score', new.score, 'routing_outcome', new.routing_outcome,
                           'audit_sampled', new.audit_sampled, 'sampling_propensity', new.sampling_propensity),
                       %s
                FROM new
            )
            SELECT id, item_id, policy_id, model_name, model_version, score, routing_outcome, audit_sampled
            FROM new
            """,  # noqa: S608 (constant column names only)
            [actor.id, actor.label, current_request_id.get()],
        )
        return {
            (item, policy, name, version): {
                "id": pk,
                "score": score,
                "routing_outcome": outcome,
                "audit_sampled": sampled,
                "task_id": None,
            }
            for pk, item, policy, name, version, score, outcome, sampled in cursor.fetchall()
        }


def _earlier_decisions(keys: list[tuple]) -> dict[tuple, dict[str, Any]]:
    """The stored state of decisions sent before (resends), with their first task."""
    if not keys:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT d.id, d.item_id, d.policy_id, d.model_name, d.model_version, d.score,
                   d.routing_outcome, d.audit_sampled,
                   (SELECT t.id FROM reviewapp_reviewtask t WHERE t.decision_id = d.id
                    ORDER BY t.decision_id, t.id LIMIT 1)  -- this order uses the decision_id index
            FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[])
                 AS k(item_id, policy_id, model_name, model_version)
            JOIN reviewapp_modeldecision d
              ON d.item_id = k.item_id AND d.policy_id = k.policy_id
             AND d.model_name = k.model_name AND d.model_version = k.model_version
            """,
            [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys]],
        )
        rows = cursor.fetchall()
        return {
            (item_id, policy_id, model_name, model_version): {
                "id": decision_id,
                "score": score,
                "routing_outcome": outcome,
                "audit_sampled": sampled,
                "task_id": task_id,
            }
            for (decision_id, item_id, policy_id, model_name, model_version, score, outcome, sampled, task_id) in rows
        }
