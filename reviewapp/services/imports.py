"""Dataset import: records from public or in-house datasets become content items and review tasks.

Imported content goes through the same item validation as the ingest API and is written with the
same set-based statements (`content_items_upsert`, `review_task_open`), one transaction per chunk, so a large
file neither holds one long transaction nor loses finished chunks when a later one fails.
The crowd labels a dataset carries are kept on the item (`metadata["source_annotations"]`) so they
can later become real annotations; they are never shown as reviewer work.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils.text import slugify

from labeling.datasets import (
    CONVABUSE,
    CONVABUSE_FILE,
    TOXIC_SPANS,
    AnnotatorLabel,
    DatasetError,
    DatasetRecord,
    ReadStats,
    ToxicRule,
    read_convabuse,
    read_table,
    read_toxic_spans,
)
from labeling.models import Policy, PolicyVersion, check_label_schema

from ..audit import Actor, audit_record
from ..models import ContentItem, Queue, QueueKind, ReviewTask, TaskReason
from .ingest import content_items_upsert
from .routing import task_priority
from .tasks import TaskSpec, review_task_open
from .validation import ItemRow, RowError, check_item_fields

CHUNK_SIZE = 1000
# A dataset record carries no model score; 0.5 ranks it as fully uncertain, by severity and reach.
IMPORT_SCORE = 0.5
FORMATS = (TOXIC_SPANS, CONVABUSE, "jsonl", "csv")


@dataclass
class ImportResult:
    items_created: int = 0
    items_existing: int = 0
    tasks_created: int = 0
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (external_id, message)
    import_id: str = ""

    @property
    def created_anything(self) -> bool:
        return bool(self.items_created or self.tasks_created)


def items_import(
    *,
    records: Iterable[DatasetRecord],
    policy: Policy,
    queue: Queue,
    actor: Actor,
    reason: str = TaskReason.BACKFILL,
) -> ImportResult:
    """Store dataset records as content items and open one task per item in `queue` under `policy`.

    Idempotent: an item is identified by (source, external_id) and never rewritten; a task is
    opened only for an item that has never had a task for this policy in this queue, so
    re-importing a file creates nothing, even after its first tasks were completed. Invalid
    records are reported in `result.invalid` and skip nothing else.

    Opens one durable transaction per chunk of 1,000 records: call it outside any transaction.
    Locks: row locks on the chunk's conflicting items and open tasks, taken in key order.
    `items_created` counts items that did not exist when the chunk started; an import of the
    same records racing this one may count the same items as created too. Audit: one
    `task.created` per task and, when anything was created, one `import.completed` summary.
    """
    result = ImportResult(import_id=uuid.uuid4().hex)
    seen: set[tuple[str, str]] = set()
    for chunk in _chunks(records, CHUNK_SIZE):
        rows = _check_records(chunk, seen, result)
        if rows:
            with transaction.atomic(durable=True):
                _store_chunk(rows, policy=policy, queue=queue, actor=actor, reason=reason, result=result)
    if result.created_anything:
        with transaction.atomic(durable=True):
            audit_record(
                actor=actor,
                action="import.completed",
                object_type="import",
                object_id=result.import_id,
                after=_summary(result, policy, queue, reason),
            )
    return result


def _chunks(records: Iterable[DatasetRecord], size: int) -> Iterator[list[DatasetRecord]]:
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _check_records(chunk: list[DatasetRecord], seen: set[tuple[str, str]], result: ImportResult) -> list[ItemRow]:
    rows = []
    for record in chunk:
        try:
            row = check_item_fields(record_item_fields(record))
        except RowError as error:
            where = f"{error.field}: " if error.field else ""
            result.invalid.append((str(record.external_id), where + error.message))
            continue
        key = (row.source, row.external_id)
        if key in seen:
            result.invalid.append((row.external_id, "duplicate external_id in this import; the first record is kept"))
            continue
        seen.add(key)
        rows.append(row)
    return rows


def record_item_fields(record: DatasetRecord) -> dict[str, Any]:
    """The ingest-API item fields for a record, with its crowd labels folded into metadata."""
    metadata = dict(record.metadata)
    if record.annotations:
        metadata["source_annotations"] = [_compact(annotation) for annotation in record.annotations]
    if record.label is not None:
        metadata["source_label"] = record.label
    return {
        "source": record.source,
        "external_id": record.external_id,
        "text": record.text,
        "context": record.context,
        "metadata": metadata,
    }


def _compact(annotation: AnnotatorLabel) -> dict[str, Any]:
    compact: dict[str, Any] = {"annotator": annotation.annotator, "label": annotation.label}
    if annotation.severity:
        compact["severity"] = annotation.severity
    if annotation.spans:
        compact["spans"] = annotation.spans
    # A repeat answer must not later count as a second annotation by the same reviewer.
    if annotation.extra.get("repeat"):
        compact["repeat"] = True
    return compact


def _store_chunk(
    rows: list[ItemRow], *, policy: Policy, queue: Queue, actor: Actor, reason: str, result: ImportResult
) -> None:
    keys = [(row.source, row.external_id) for row in rows]
    existing = _existing_item_keys(keys)
    item_ids = content_items_upsert(items=rows)
    result.items_existing += len(existing)
    result.items_created += len(item_ids) - len(existing)
    already_tasked = set(
        ReviewTask.objects.filter(item_id__in=item_ids.values(), policy=policy, queue=queue).values_list(
            "item_id", flat=True
        )
    )
    reach = {(row.source, row.external_id): row.reach for row in rows}
    specs = [
        TaskSpec(
            item_id=item_id,
            policy_id=policy.pk,
            queue=queue,
            reason=reason,
            priority=task_priority(severity_weight=policy.severity_weight, score=IMPORT_SCORE, reach=reach[key]),
        )
        for key, item_id in item_ids.items()
        if item_id not in already_tasked
    ]
    # review_task_open writes the `task.created` audit event of each task it opens.
    result.tasks_created += len(review_task_open(specs=specs, actor=actor))


def _existing_item_keys(keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    by_source: dict[str, list[str]] = {}
    for source, external_id in keys:
        by_source.setdefault(source, []).append(external_id)
    existing: set[tuple[str, str]] = set()
    for source, external_ids in by_source.items():
        found = ContentItem.objects.filter(source=source, external_id__in=external_ids)
        existing.update((source, external_id) for external_id in found.values_list("external_id", flat=True))
    return existing


def _summary(result: ImportResult, policy: Policy, queue: Queue, reason: str) -> dict[str, Any]:
    return {
        "policy": policy.key,
        "queue": queue.slug,
        "reason": reason,
        "items_created": result.items_created,
        "items_existing": result.items_existing,
        "tasks_created": result.tasks_created,
        "invalid": len(result.invalid),
    }


# --- import targets: the policy and queue an import lands in ----------------------------


@dataclass(frozen=True)
class PolicySpec:
    """What to create when an import names a policy that does not exist yet."""

    key: str
    name: str
    guideline: str
    label_schema: dict[str, Any]
    severity_weight: float = 1.0


TOXICITY_SCHEMA = {
    "labels": [
        {
            "value": "toxic",
            "title": "Toxic",
            "description": "Rude, disrespectful or unreasonable; would make someone leave the conversation.",
        },
        {"value": "not_toxic", "title": "Not toxic", "description": "Civil, even when critical or blunt."},
    ],
    "allow_multiple": False,
    "severity_levels": ["low", "medium", "high"],
}
ABUSE_SCHEMA = {
    "labels": [
        {"value": "abusive", "title": "Abusive", "description": "Abuse directed at the agent, a person or a group."},
        {"value": "ambiguous", "title": "Ambiguous", "description": "Could be read as abusive or not."},
        {"value": "not_abusive", "title": "Not abusive", "description": "No abuse, including banter and tests."},
    ],
    "allow_multiple": False,
    "severity_levels": ["mild", "strong", "very_strong"],
    # ConvAbuse's own 5-point scale (is_abuse 1, 0, -1, -2, -3): an answer without a severity
    # sits below "mild" by its label, so severity agreement covers every answer.
    "scales": {
        "label": "nominal",
        "severity": {"level": "ordinal", "order": ["not_abusive", "ambiguous", "mild", "strong", "very_strong"]},
    },
}
DATASET_POLICIES = {
    TOXIC_SPANS: PolicySpec(
        key="toxicity",
        name="Toxicity",
        guideline=(
            "# Toxicity\n\nLabel a comment **toxic** when it is rude, disrespectful or unreasonable in a way "
            "that would make someone want to leave the conversation: insults, threats, identity-based "
            "attacks, profanity aimed at people. Strong disagreement, criticism of ideas and blunt "
            "language that targets no one are **not toxic**.\n\nWhere only part of the text is toxic, "
            "highlight that part as evidence."
        ),
        label_schema=TOXICITY_SCHEMA,
    ),
    CONVABUSE: PolicySpec(
        key="abuse",
        name="Abuse towards conversational agents",
        guideline=(
            "# Abuse towards conversational agents\n\nRead the user's turn in the context of the "
            "conversation. Label it **abusive** when it insults, harasses, sexually harasses or "
            "demeans the agent, a person or a group; give the severity (mild, strong, very strong). "
            "Use **ambiguous** when a reasonable reader could take it either way, and **not abusive** "
            "for everything else, including testing the bot and mild frustration.\n\n"
            "Data: ConvAbuse (Cercas Curry, Abercrombie and Rieser, EMNLP 2021), CC BY 4.0."
        ),
        label_schema=ABUSE_SCHEMA,
    ),
}


def table_policy_spec(key: str, labels: Iterable[str | None]) -> PolicySpec:
    """A policy for a csv/jsonl import: its labels are the file's labels when they form a schema."""
    values = sorted({label for label in labels if label})
    schema: dict[str, Any] = {
        "labels": [{"value": value, "title": value.replace("_", " ").capitalize()} for value in values],
        "allow_multiple": False,
        "severity_levels": ["low", "medium", "high"],
    }
    try:
        if len(values) > 20:
            raise ValidationError("too many labels")
        check_label_schema(schema)
    except ValidationError:
        schema = {**TOXICITY_SCHEMA}
    name = key.replace("-", " ").replace("_", " ").capitalize()
    return PolicySpec(
        key=key, name=name, guideline=f"# {name}\n\nImported dataset; write the guideline here.", label_schema=schema
    )


def policy_ensure(*, spec: PolicySpec, actor: Actor) -> tuple[Policy, bool]:
    """The policy with `spec.key`, created with version 1 when missing; (policy, created).

    An existing policy is returned as it is: its guideline and versions belong to its owners.
    Raises ValidationError for a key that is not a slug or an invalid label schema.
    """
    validate_slug(spec.key)
    check_label_schema(spec.label_schema)
    with transaction.atomic():
        policy, created = Policy.objects.get_or_create(
            key=spec.key,
            defaults={"name": spec.name, "guideline": spec.guideline, "severity_weight": spec.severity_weight},
        )
        if created:
            version = PolicyVersion.objects.create(
                policy=policy, number=1, guideline=spec.guideline, label_schema=spec.label_schema
            )
            audit_record(
                actor=actor,
                action="policy.created",
                object_type="policy",
                object_id=policy.pk,
                after={
                    "key": policy.key,
                    "name": policy.name,
                    "version": version.number,
                    "labels": version.label_values,
                },
            )
    return policy, created


def queue_ensure(*, slug: str, actor: Actor, **defaults: Any) -> tuple[Queue, bool]:
    """The queue with `slug`, created with `defaults` when missing; (queue, created).

    Raises ValidationError for a slug that is not one.
    """
    validate_slug(slug)
    defaults.setdefault("name", slug.replace("-", " ").capitalize())
    defaults.setdefault("kind", QueueKind.REVIEW)
    with transaction.atomic():
        queue, created = Queue.objects.get_or_create(slug=slug, defaults=defaults)
        if created:
            after = {
                field: getattr(queue, field)
                for field in (
                    "slug",
                    "name",
                    "kind",
                    "sla_minutes",
                    "lease_seconds",
                    "required_annotations",
                    "blind_review",
                )
            }
            audit_record(actor=actor, action="queue.created", object_type="queue", object_id=queue.pk, after=after)
    return queue, created


# --- reading a dataset by format ---------------------------------------------------------


@dataclass
class TableColumns:
    text: str = "text"
    label: str | None = "label"
    id: str | None = "id"


def dataset_guess_format(path: Path) -> str:
    """The import format for `path`: a Toxic Spans or ConvAbuse folder, or a .jsonl/.csv file."""
    if path.is_dir():
        if (path / "data_comments.csv").is_file():
            return TOXIC_SPANS
        if (path / CONVABUSE_FILE).is_file():
            return CONVABUSE
        raise DatasetError(f"{path} holds neither data_comments.csv (Toxic Spans) nor {CONVABUSE_FILE} (ConvAbuse)")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise DatasetError(f"cannot tell the format of {path}; give one of: {', '.join(FORMATS)}")


def dataset_read(
    *,
    fmt: str,
    path: Path,
    limit: int | None = None,
    columns: TableColumns | None = None,
    stats: ReadStats | None = None,
    toxic_rule: ToxicRule = "highlighted",
) -> Iterator[DatasetRecord]:
    """Records of the dataset at `path` in format `fmt`; raises DatasetError for bad input.

    `toxic_rule` says when a Toxic Spans worker counts as toxic (see `read_toxic_spans`); other
    formats ignore it.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if fmt in (TOXIC_SPANS, CONVABUSE):
        if not path.is_dir():
            raise DatasetError(f"{fmt} expects the dataset folder, and {path} is not a folder")
        if fmt == TOXIC_SPANS:
            return read_toxic_spans(path, limit, stats=stats, toxic_rule=toxic_rule)
        return read_convabuse(path, limit, stats=stats)
    if fmt in ("csv", "jsonl"):
        columns = columns or TableColumns()
        table_format: Literal["csv", "jsonl"] = "csv" if fmt == "csv" else "jsonl"
        return read_table(
            path,
            table_format,
            text_col=columns.text,
            label_col=columns.label,
            id_col=columns.id,
            limit=limit,
            stats=stats,
        )
    raise DatasetError(f"unknown format {fmt!r}; expected one of: {', '.join(FORMATS)}")


@dataclass
class DatasetImport:
    """What `dataset_import` did: where the items went, and what reading and storing counted."""

    policy: Policy
    queue: Queue
    policy_created: bool
    queue_created: bool
    result: ImportResult
    stats: ReadStats
    records: list[DatasetRecord] = field(default_factory=list, repr=False)  # as read, for follow-up imports


def dataset_import(
    *,
    fmt: str,
    path: Path,
    actor: Actor,
    policy_key: str | None = None,
    queue_slug: str | None = None,
    limit: int | None = None,
    columns: TableColumns | None = None,
    queue_ensure_for: Callable[[Policy], tuple[Queue, bool]] | None = None,
    records_check: Callable[[list[DatasetRecord], Policy], None] | None = None,
    toxic_rule: ToxicRule = "highlighted",
) -> DatasetImport:
    """Read a dataset file or folder and import it with `items_import`. Idempotent.

    The policy defaults to "toxicity" for Toxic Spans, "abuse" for ConvAbuse and the slugified
    file name for csv/jsonl; the queue to "<policy>-review". Either is created when missing, the
    policy with a first version whose labels match the dataset's (for csv/jsonl: the file's
    labels when they are 2 to 20 slugs). Raises DatasetError before anything is stored when the
    input cannot be read. Reads the whole input into memory before storing the first chunk.

    The one dataset intake: crowd import (`labeling.services.crowd.dataset_import_annotations`)
    runs it with its own queue (`queue_ensure_for`, given the policy) and a `records_check` that
    raises, before any item is stored, for records the policy cannot take.

    `toxic_rule` chooses how Toxic Spans workers' rows become labels (`read_toxic_spans`); it
    shapes the reference label of items created now, not of items imported before.
    """
    stats = ReadStats()
    records = list(dataset_read(fmt=fmt, path=path, limit=limit, columns=columns, stats=stats, toxic_rule=toxic_rule))
    spec = _policy_spec(fmt, Path(path), policy_key, records)
    policy, policy_created = policy_ensure(spec=spec, actor=actor)
    if records_check is not None:
        records_check(records, policy)
    if queue_ensure_for is not None:
        queue, queue_created = queue_ensure_for(policy)
    else:
        queue, queue_created = queue_ensure(
            slug=queue_slug or f"{policy.key}-review", actor=actor, name=f"{policy.name} review"
        )
    result = items_import(records=records, policy=policy, queue=queue, actor=actor)
    return DatasetImport(policy, queue, policy_created, queue_created, result, stats, records)


def _policy_spec(fmt: str, path: Path, policy_key: str | None, records: list[DatasetRecord]) -> PolicySpec:
    known = DATASET_POLICIES.get(fmt)
    if known is not None:
        return known if policy_key in (None, known.key) else dataclasses.replace(known, key=policy_key)
    key = policy_key or slugify(path.stem)[:64] or "imported"
    return table_policy_spec(key, (record.label for record in records))
