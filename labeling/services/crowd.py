"""Crowd annotations import: a dataset's per-annotator labels become real annotations.

Toxic Spans and ConvAbuse carry every crowd worker's label. Imported as annotations they go
through the services live work uses — `task_resolve` for consensus, `gold_record` for gold with
provenance, `adjudication_request` for disagreements — so agreement reports, reviewer statistics
and the adjudication queue show real disagreement.

Each distinct annotator becomes a reviewer account `<prefix>-<annotator id>` ("ts-868",
"ca-annotator3") in the `crowd` group, with no usable password and no queue membership: it never
logs in and is never served live work. Each (record, annotator) becomes one `Annotation` with
`source=import`, zero handle time and a submission id derived from (dataset, item, annotator), so
re-importing inserts nothing.

Repeat answers by one annotator on one item (ConvAbuse includes some on purpose, to measure
intra-annotator agreement) are not annotations: a reviewer has one live annotation per item and
policy. The first answer is the annotation; the repeats are skipped and counted, and stay on the
item in `metadata["source_annotations"]` (written by `items_import`, marked `"repeat": true`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils.text import slugify

from reviewapp.audit import Actor, audit_event, audit_record, audit_record_many
from reviewapp.db import copy_rows, stage_table
from reviewapp.models import ConsensusRule, ContentItem, Queue, ReviewTask, TaskStatus
from reviewapp.services.imports import (
    DatasetImport,
    dataset_import,
    queue_ensure,
)
from reviewapp.services.tasks import review_task_complete

from ..datasets import CONVABUSE, TOXIC_SPANS, DatasetError, DatasetRecord, ToxicRule
from ..models import AnnotationSource, Policy, PolicyVersion
from .annotations import check_labels
from .consensus import task_resolve

CROWD_GROUP = "crowd"
CROWD_FORMATS = (TOXIC_SPANS, CONVABUSE)
USERNAME_PREFIXES = {TOXIC_SPANS: "ts", CONVABUSE: "ca"}
USERNAME_MAX = 150  # django.contrib.auth User.username
CHUNK_SIZE = 2000  # votes per transaction that stores annotations
RESOLVE_BATCH = 250  # tasks resolved per transaction
# Fixed forever: submission ids of imported annotations are uuid5 names under it.
SUBMISSION_NAMESPACE = uuid.UUID("dfd568fa-97e8-484e-a8db-71d4f96fe0d2")
_UNSAFE_USERNAME_CHARS = re.compile(r"[^\w.@+-]", re.ASCII)


@dataclass
class CrowdImportResult:
    import_id: str = ""
    users_created: int = 0
    annotations_created: int = 0
    annotations_existing: int = 0  # submission already stored: a re-import
    repeats_skipped: int = 0  # second and later answers by one annotator on one item
    unattributed_skipped: int = 0  # answers without an annotator id
    records_without_task: int = 0  # record whose item or task items_import did not create (invalid)
    tasks_completed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # task_resolve results: gold, adjudication, ...

    @property
    def created_anything(self) -> bool:
        return bool(self.users_created or self.annotations_created or self.tasks_completed or self.outcomes)


@dataclass
class CrowdDatasetImport:
    dataset: DatasetImport  # items and tasks, as `dataset_import` reports them
    annotations: CrowdImportResult


@dataclass(frozen=True)
class _Vote:
    source: str
    external_id: str
    username: str
    submission_id: uuid.UUID
    label: str
    severity: str

    @property
    def item_key(self) -> tuple[str, str]:
        return (self.source, self.external_id)


def crowd_username(prefix: str, annotator: str) -> str:
    """`<prefix>-<annotator id>` lower-cased, as a valid Django username.

    Characters Django refuses become '-' and a short hash of the raw id is appended, so ids that
    differ only in such characters stay distinct; an over-long name is cut and hashed the same way.
    """
    raw = annotator.strip()
    safe = _UNSAFE_USERNAME_CHARS.sub("-", raw.lower())
    name = f"{prefix}-{safe}"
    if safe != raw.lower() or len(name) > USERNAME_MAX:
        digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: USERNAME_MAX - 9]}-{digest}"
    return name


def submission_id_for(*, dataset: str, policy_key: str, source: str, external_id: str, annotator: str) -> uuid.UUID:
    """The submission id of an imported annotation: the same on every import of the same answer.

    The policy is part of it so that one dataset can be imported under two policies.
    """
    return uuid.uuid5(SUBMISSION_NAMESPACE, "\x1f".join((dataset, policy_key, source, external_id, annotator)))


def crowd_annotations_import(
    *,
    records: Iterable[DatasetRecord],
    policy: Policy,
    queue: Queue,
    actor: Actor,
    dataset: str,
) -> CrowdImportResult:
    """Store each record's crowd labels as annotations on its task, then resolve the task. Idempotent.

    Call after `items_import` opened the records' tasks in `queue` (the first task of each item
    there is used) and outside any transaction. Annotations are under the policy's current
    version. A task that gets annotations is completed with `annotation_count` set and enough
    `extra_annotations` that its requirement equals its count (an item with fewer labels than
    the queue requires is completed with what the dataset has), then resolved with
    `task_resolve(force=True)`: the queue's consensus rule makes gold or an adjudication. Tasks
    already decided — even sent back by a lead — are not touched again.

    One transaction per chunk of votes for annotations and task completion (task rows locked in
    id order), then one per batch of tasks for resolution, in task id order; a re-run resumes an
    interrupted import (completed, unresolved tasks are resolved then). Resolution dominates the
    time: `task_resolve` runs about 15 queries per task.
    Audit: `user.created` per new crowd account, `task.completed` per task, the events of the
    consensus services, and one `import.annotations` summary when anything changed.
    Raises ValidationError before writing when a label does not fit the policy's schema.
    """
    version = policy.current_version()
    if version is None:
        raise ValidationError(f"Policy {policy.key!r} has no version in force; publish one before importing labels.")
    records = list(records)
    result = CrowdImportResult(import_id=uuid.uuid4().hex)
    votes = crowd_votes(records, version=version, dataset=dataset, result=result)
    users, result.users_created = crowd_users_ensure(usernames=(vote.username for vote in votes), actor=actor)
    task_ids: list[int] = []
    for chunk in _chunks(votes, CHUNK_SIZE):
        with transaction.atomic(durable=True):
            task_ids += _store_chunk(
                chunk, users, policy=policy, version=version, queue=queue, actor=actor, result=result
            )
    unresolved = _unresolved(task_ids)
    for start in range(0, len(unresolved), RESOLVE_BATCH):
        # task_resolve nests (its atomic block becomes a savepoint): one commit per batch, not per task.
        with transaction.atomic(durable=True):
            for task_id in unresolved[start : start + RESOLVE_BATCH]:
                result.outcomes[task_resolve(task_id=task_id, actor=actor, force=True)] += 1
    if result.created_anything:
        with transaction.atomic(durable=True):
            audit_record(
                actor=actor,
                action="import.annotations",
                object_type="import",
                object_id=result.import_id,
                after=_summary(result, policy, version, queue, dataset),
            )
    return result


def crowd_votes(
    records: Sequence[DatasetRecord], *, version: PolicyVersion, dataset: str, result: CrowdImportResult | None = None
) -> list[_Vote]:
    """Each record's first answer per annotator, checked against the version's labels.

    Raises ValidationError naming the first label or severity the schema does not allow, and
    DatasetError when two annotator ids would share one username.
    """
    result = result if result is not None else CrowdImportResult()
    prefix = USERNAME_PREFIXES.get(dataset) or slugify(dataset)[:20] or "crowd"
    policy_key = version.policy.key
    owners: dict[str, str] = {}
    votes: list[_Vote] = []
    checked: set[tuple[str, str]] = set()
    records_seen: set[tuple[str, str]] = set()
    for record in records:
        if (record.source, record.external_id) in records_seen:
            continue  # items_import keeps the first record of a duplicated id, and so do we
        records_seen.add((record.source, record.external_id))
        seen: set[str] = set()
        for answer in record.annotations:
            annotator = answer.annotator.strip()
            if not annotator:
                result.unattributed_skipped += 1
                continue
            if annotator in seen:
                result.repeats_skipped += 1
                continue
            seen.add(annotator)
            severity = answer.severity or ""
            if (answer.label, severity) not in checked:
                _check_vote(version, answer.label, severity, record)
                checked.add((answer.label, severity))
            username = crowd_username(prefix, annotator)
            if owners.setdefault(username, annotator) != annotator:
                raise DatasetError(f"annotators {owners[username]!r} and {annotator!r} would share user {username!r}")
            submission = submission_id_for(
                dataset=dataset,
                policy_key=policy_key,
                source=record.source,
                external_id=record.external_id,
                annotator=annotator,
            )
            votes.append(_Vote(record.source, record.external_id, username, submission, answer.label, severity))
    return votes


def _check_vote(version: PolicyVersion, label: str, severity: str, record: DatasetRecord) -> None:
    try:
        check_labels(version, [label], severity)
    except ValidationError as error:
        raise ValidationError(f"{record.source} {record.external_id}: {'; '.join(error.messages)}") from error


def crowd_users_ensure(*, usernames: Iterable[str], actor: Actor) -> tuple[dict[str, int], int]:
    """({username: user id}, number created) for crowd reviewer accounts, creating missing ones.

    New accounts get an unusable password, the `crowd` group and no queue membership, and a
    `user.created` audit event each. Raises ValidationError when a name belongs to an account
    outside the `crowd` group: imported labels are never attributed to a real person.
    """
    wanted = sorted(set(usernames))
    with transaction.atomic():
        group, _ = Group.objects.get_or_create(name=CROWD_GROUP)
        existing = User.objects.filter(username__in=wanted)
        taken = list(existing.exclude(groups=group).values_list("username", flat=True)[:5])
        if taken:
            raise ValidationError(f"Usernames already used by accounts outside the crowd group: {', '.join(taken)}")
        before = set(existing.values_list("username", flat=True))
        new = [User(username=name, password=make_password(None)) for name in wanted if name not in before]
        User.objects.bulk_create(new, ignore_conflicts=True)
        ids = dict(User.objects.filter(username__in=wanted).values_list("username", "id"))
        membership = User.groups.through
        membership.objects.bulk_create(
            [membership(user_id=ids[user.username], group_id=group.pk) for user in new], ignore_conflicts=True
        )
        audit_record_many(
            audit_event(
                actor=actor,
                action="user.created",
                object_type="user",
                object_id=ids[user.username],
                after={"username": user.username, "groups": [CROWD_GROUP], "usable_password": False},
            )
            for user in new
        )
    return ids, len(new)


ANNOTATION_STAGE = """
    ord int, task_id bigint, item_id bigint, reviewer_id bigint, submission_id uuid, labels jsonb, severity text
"""
# ON CONFLICT without a target skips both a known submission id and a second live annotation
# by the same reviewer on the item (the partial unique index): either means "already imported".
INSERT_ANNOTATIONS = """
    INSERT INTO labeling_annotation
        (task_id, item_id, policy_id, policy_version_id, reviewer_id, submission_id, labels, severity,
         rationale, handle_time_ms, late, source)
    SELECT task_id, item_id, %(policy)s, %(version)s, reviewer_id, submission_id, labels, severity,
           '', 0, false, %(source)s
    FROM stage_crowd_annotations ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING task_id
"""


def _store_chunk(
    votes: list[_Vote],
    users: dict[str, int],
    *,
    policy: Policy,
    version: PolicyVersion,
    queue: Queue,
    actor: Actor,
    result: CrowdImportResult,
) -> list[int]:
    """Insert the chunk's annotations and complete the tasks that got some; return its task ids."""
    keys = {vote.item_key for vote in votes}
    items = _item_ids(keys)
    tasks = _first_task_ids(items.values(), policy=policy, queue=queue)
    result.records_without_task += sum(1 for key in keys if tasks.get(items.get(key, -1)) is None)
    rows = [
        (
            ord_,
            tasks[items[vote.item_key]],
            items[vote.item_key],
            users[vote.username],
            str(vote.submission_id),
            json.dumps([vote.label]),
            vote.severity,
        )
        for ord_, vote in enumerate(votes)
        if tasks.get(items.get(vote.item_key, -1)) is not None
    ]
    stage_table("stage_crowd_annotations", ANNOTATION_STAGE)
    copy_rows(
        "stage_crowd_annotations",
        ("ord", "task_id", "item_id", "reviewer_id", "submission_id", "labels", "severity"),
        rows,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_ANNOTATIONS, {"policy": policy.pk, "version": version.pk, "source": AnnotationSource.IMPORT}
        )
        inserted = Counter(task_id for (task_id,) in cursor.fetchall())
    result.annotations_created += sum(inserted.values())
    result.annotations_existing += len(rows) - sum(inserted.values())
    completed = review_task_complete(task_ids=sorted(inserted), actor=actor, import_id=result.import_id)
    result.tasks_completed += len(completed)
    return sorted(set(tasks.values()))


def _item_ids(keys: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    by_source: dict[str, list[str]] = {}
    for source, external_id in keys:
        by_source.setdefault(source, []).append(external_id)
    found: dict[tuple[str, str], int] = {}
    for source, external_ids in by_source.items():
        rows = ContentItem.objects.filter(source=source, external_id__in=external_ids)
        found.update(((source, ext), pk) for ext, pk in rows.values_list("external_id", "id"))
    return found


def _first_task_ids(item_ids: Iterable[int], *, policy: Policy, queue: Queue) -> dict[int, int]:
    """item id → the first task items_import opened for it under `policy` in `queue`."""
    rows = (
        ReviewTask.objects.filter(item_id__in=list(item_ids), policy=policy, queue=queue)
        .order_by("item_id", "id")
        .distinct("item_id")
        .values_list("item_id", "id")
    )
    return dict(rows)


def _unresolved(task_ids: list[int]) -> list[int]:
    """The tasks still waiting for consensus: this run's, and any an interrupted run left."""
    rows = ReviewTask.objects.filter(pk__in=task_ids, status=TaskStatus.COMPLETED, resolved_at__isnull=True)
    return list(rows.order_by("pk").values_list("pk", flat=True))


def _chunks(votes: list[_Vote], size: int) -> Iterator[list[_Vote]]:
    """Chunks of about `size` votes; one item's votes are never split (its task completes once)."""
    chunk: list[_Vote] = []
    for vote in votes:
        if len(chunk) >= size and vote.item_key != chunk[-1].item_key:
            yield chunk
            chunk = []
        chunk.append(vote)
    if chunk:
        yield chunk


def _summary(
    result: CrowdImportResult, policy: Policy, version: PolicyVersion, queue: Queue, dataset: str
) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "policy": policy.key,
        "policy_version": version.number,
        "queue": queue.slug,
        "users_created": result.users_created,
        "annotations_created": result.annotations_created,
        "annotations_existing": result.annotations_existing,
        "repeats_skipped": result.repeats_skipped,
        "unattributed_skipped": result.unattributed_skipped,
        "records_without_task": result.records_without_task,
        "tasks_completed": result.tasks_completed,
        "outcomes": dict(result.outcomes),
    }


# --- a whole dataset, from its folder ------------------------------------------------------


def crowd_queue_ensure(*, policy: Policy, actor: Actor, slug: str | None = None) -> tuple[Queue, bool]:
    """The queue crowd labels are imported into (default `<policy>-crowd`), created when missing.

    Created with one required annotation (each task's extra annotations raise it to the number
    of crowd labels it has), a strict-plurality majority rule, no adaptive redundancy and direct
    gold: ties go to leads. It has no members, so no live work is served from it until a lead
    sends an item back and adds reviewers.
    """
    return queue_ensure(
        slug=slug or f"{policy.key}-crowd",
        actor=actor,
        name=f"{policy.name}: imported crowd labels",
        description="Crowd annotations imported from a public dataset; ties and disagreements go to leads.",
        required_annotations=1,
        max_annotations=1,
        consensus_rule=ConsensusRule.MAJORITY,
        min_margin=0.0,
        adaptive=False,
        auto_gold=True,
    )


def dataset_import_annotations(
    *,
    fmt: str,
    path: Path,
    actor: Actor,
    policy_key: str | None = None,
    queue_slug: str | None = None,
    limit: int | None = None,
    toxic_rule: ToxicRule = "highlighted",
) -> CrowdDatasetImport:
    """Import a Toxic Spans or ConvAbuse folder as items, tasks and per-annotator annotations.

    `dataset_import` with the crowd labels made into annotations and resolved; `toxic_rule` says
    when a Toxic Spans worker's answer counts as toxic (`read_toxic_spans`). The policy is
    the dataset's ("toxicity", "abuse") unless `policy_key` names another; the queue defaults to
    `<policy>-crowd` (see `crowd_queue_ensure`). Idempotent. Raises DatasetError for a format
    without per-annotator labels or unreadable input, ValidationError for labels the policy's
    schema lacks — both before any item is stored.
    """
    if fmt not in CROWD_FORMATS:
        raise DatasetError(
            f"{fmt} files carry no per-annotator labels; crowd annotations can be imported from "
            f"{' and '.join(CROWD_FORMATS)} only"
        )

    def votes_check(records: list[DatasetRecord], policy: Policy) -> None:
        version = policy.current_version()
        if version is not None:
            crowd_votes(records, version=version, dataset=fmt)  # fail on foreign labels before storing items

    imported = dataset_import(
        fmt=fmt,
        path=Path(path),
        actor=actor,
        policy_key=policy_key,
        limit=limit,
        queue_ensure_for=lambda policy: crowd_queue_ensure(policy=policy, actor=actor, slug=queue_slug),
        records_check=votes_check,
        toxic_rule=toxic_rule,
    )
    annotations = crowd_annotations_import(
        records=imported.records, policy=imported.policy, queue=imported.queue, actor=actor, dataset=fmt
    )
    return CrowdDatasetImport(imported, annotations)
