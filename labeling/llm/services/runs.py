"""The run engine of LLM reviewers: start a run, process it chunk by chunk, stop, resume.

A run is a frozen list of items (`LLMRun.item_ids`) asked under one or more prompt variants. The
Celery task `llm.run_chunk` calls `llm_run_process_chunk`, which

1. claims the next chunk in a short transaction (locks the run row, re-checks status and
   budgets, reads `position`, stamps the heartbeat) and commits;
2. asks the backend OUTSIDE any transaction (cache hits first: they cost nothing);
3. stores every answer in one transaction that re-locks the run and advances `position` only if
   it still equals the position claimed (compare-and-set): a duplicate or stale delivery that
   computed the same chunk finds the position moved and stores nothing;
4. the winner alone enqueues the next chunk after commit, so a forked chain of messages folds
   back into one.

A worker killed mid-chunk leaves `position` where it was; `llm_runs_resume_stalled` (beat)
re-enqueues runs whose heartbeat is older than LLM_RUN_STALL_SECONDS, and the chunk is redone.
`LLMJudgement` is unique per (run, item, variant), so no item is ever answered twice in a run.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from activelearning.llm.base import Judgement, PolicyPrompt, content_hash
from activelearning.llm.injection import INJECTIONS, inject
from labeling.models import Annotation, AnnotationSource, GoldLabel, Policy, PolicyDraft, PolicyVersion
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.models import ContentItem, Queue, ReviewTask

from ..backends import backend_for
from ..models import LLMCacheEntry, LLMJudgement, LLMReviewer, LLMRun, RunKind, RunStatus
from ..prompting import item_text, policy_prompt
from .scoring import llm_decisions_record

FINISHED = (RunStatus.DONE, RunStatus.BUDGET, RunStatus.FAILED, RunStatus.CANCELLED)
MAX_CHUNK_SIZE = 500
MAX_RUN_ITEMS = 100_000
NO_TEXT = "No text to read."
# Kinds whose plain answers become annotations of the reviewer's machine account.
ANNOTATING_KINDS = (RunKind.GOLD_SAMPLE, RunKind.QUEUE)
SUBMISSION_NAMESPACE = uuid.UUID("6f1d0c1e-4c8e-4f6a-9d62-4c4d8b1a7e17")


# --------------------------------------------------------------------------- starting and stopping


def default_variants(kind: str) -> list[str]:
    if kind == RunKind.DRAFT:
        return ["current", "draft"]
    if kind == RunKind.INJECTION:
        return ["", *INJECTIONS]
    return [""]


def check_run_request(
    *, kind: str, item_ids: list[int], variants: list[str], queue: Queue | None, draft: PolicyDraft | None,
    reviewer: LLMReviewer, budget_items: int | None, budget_tokens: int | None, chunk_size: int,
) -> None:  # fmt: skip
    """Raise a ValidationError naming what is wrong with a run request."""
    errors: dict[str, str] = {}
    if kind not in RunKind.values:
        errors["kind"] = f"Choose one of: {', '.join(RunKind.values)}."
    if not item_ids:
        errors["item_ids"] = "There are no items to run on."
    elif len(item_ids) > MAX_RUN_ITEMS:
        errors["item_ids"] = f"A run takes at most {MAX_RUN_ITEMS:,} items."
    elif len(set(item_ids)) != len(item_ids):
        errors["item_ids"] = "An item is listed twice."
    allowed = {"", *INJECTIONS} | ({"current", "draft"} if draft is not None else set())
    if not variants or len(set(variants)) != len(variants) or not set(variants) <= allowed:
        errors["variants"] = f"Variants must be distinct and among: {', '.join(repr(v) for v in sorted(allowed))}."
    elif any(v in INJECTIONS for v in variants) and variants[0] != "":
        errors["variants"] = 'An injection check asks the plain prompt first (variant "").'
    if kind == RunKind.QUEUE and queue is None:
        errors["queue"] = "Choose the queue whose open tasks the reviewer labels."
    if kind == RunKind.DRAFT and draft is None:
        errors["draft"] = "A draft evaluation needs its draft."
    if draft is not None and draft.policy_id != reviewer.policy_id:
        errors["draft"] = "That draft belongs to another policy."
    if budget_items is not None and budget_items < 1:
        errors["budget_items"] = "An item budget is at least 1 (leave it empty for none)."
    if budget_tokens is not None and budget_tokens < 1:
        errors["budget_tokens"] = "A token budget is at least 1 (leave it empty for none)."
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        errors["chunk_size"] = f"A chunk holds 1 to {MAX_CHUNK_SIZE} items."
    if not reviewer.is_active:
        errors["reviewer"] = "This LLM reviewer is switched off."
    if errors:
        raise ValidationError(errors)


def llm_run_start(
    *,
    reviewer: LLMReviewer,
    kind: str,
    item_ids: list[int],
    variants: list[str] | None = None,
    queue: Queue | None = None,
    draft: PolicyDraft | None = None,
    budget_items: int | None = None,
    budget_tokens: int | None = None,
    chunk_size: int = 20,
    actor: Any,
) -> LLMRun:
    """Create a run over `item_ids` (order kept), audit it and enqueue its first chunk on commit."""
    item_ids = [int(i) for i in item_ids]
    variants = list(variants) if variants is not None else default_variants(kind)
    check_run_request(
        kind=kind, item_ids=item_ids, variants=variants, queue=queue, draft=draft, reviewer=reviewer,
        budget_items=budget_items, budget_tokens=budget_tokens, chunk_size=chunk_size,
    )  # fmt: skip
    with transaction.atomic():
        known = set(ContentItem.objects.filter(pk__in=item_ids).values_list("pk", flat=True))
        if len(known) != len(item_ids):
            raise ValidationError({"item_ids": f"{len(item_ids) - len(known)} of the items do not exist."})
        run = LLMRun.objects.create(
            reviewer=reviewer,
            kind=kind,
            queue=queue,
            draft=draft,
            item_ids=item_ids,
            variants=variants,
            chunk_size=chunk_size,
            budget_items=budget_items,
            budget_tokens=budget_tokens,
            started_by=actor if getattr(actor, "is_authenticated", False) else None,
            heartbeat_at=timezone.now(),
        )
        audit_record(
            actor=Actor.of(actor),
            action="llm_run.start",
            object_type="llm_run",
            object_id=run.pk,
            after={
                "reviewer_id": reviewer.pk,
                "kind": kind,
                "items": len(item_ids),
                "variants": variants,
                "queue_id": queue.pk if queue else None,
                "draft_id": draft.pk if draft else None,
                "budget_items": budget_items,
                "budget_tokens": budget_tokens,
                "chunk_size": chunk_size,
            },
        )
        enqueue_chunk(run.pk)
    return run


def llm_run_cancel(*, run_id: int, actor: Any) -> LLMRun:
    """Stop a run; a chunk being computed is discarded when it tries to commit. Idempotent."""
    with transaction.atomic():
        run = LLMRun.objects.select_for_update().get(pk=run_id)
        if run.status in FINISHED:
            return run
        before = run.status
        _finish(run, RunStatus.CANCELLED)
        audit_record(
            actor=Actor.of(actor),
            action="llm_run.cancel",
            object_type="llm_run",
            object_id=run.pk,
            before={"status": before, "position": run.position},
            after={"status": run.status},
        )
    return run


def llm_run_fail(*, run_id: int, error: str) -> None:
    """Mark a run failed (the task gave up on it); the error is shown on the run page."""
    with transaction.atomic():
        run = LLMRun.objects.select_for_update().get(pk=run_id)
        if run.status in FINISHED:
            return
        run.error = error[:2000]
        _finish(run, RunStatus.FAILED, extra=["error"])
        audit_record(
            actor=SYSTEM,
            action="llm_run.fail",
            object_type="llm_run",
            object_id=run.pk,
            after={"status": run.status, "position": run.position, "error": run.error},
        )


def llm_runs_resume_stalled(*, now: Any = None) -> list[int]:
    """Re-enqueue the next chunk of every unfinished run whose heartbeat is older than
    LLM_RUN_STALL_SECONDS (its worker died or its message was lost); returns their ids.

    The heartbeat is stamped as the run is re-enqueued, so the next sweep waits again. Rows
    another transaction holds are skipped (that run is alive).
    """
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.LLM_RUN_STALL_SECONDS)
    with transaction.atomic():
        stalled = list(
            LLMRun.objects.select_for_update(skip_locked=True)
            .filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
            .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
            .order_by("pk")
        )
        for run in stalled:
            run.heartbeat_at = now
            run.save(update_fields=["heartbeat_at"])
            audit_record(
                actor=SYSTEM,
                action="llm_run.resume",
                object_type="llm_run",
                object_id=run.pk,
                after={"position": run.position, "status": run.status},
            )
            enqueue_chunk(run.pk)
    return [run.pk for run in stalled]


def enqueue_chunk(run_id: int, *, countdown: float = 0) -> None:
    """Send `llm.run_chunk(run_id)` once the current transaction commits (the one
    services -> tasks edge of this app)."""
    from ..tasks import run_chunk  # tasks import this module

    transaction.on_commit(lambda: run_chunk.apply_async((run_id,), countdown=countdown or None))


def _finish(run: LLMRun, status: str, *, extra: list[str] | None = None) -> None:
    run.status = status
    run.finished_at = timezone.now()
    run.heartbeat_at = run.finished_at
    run.save(update_fields=["status", "finished_at", "heartbeat_at", *(extra or [])])


# --------------------------------------------------------------------------- gold samples


def llm_gold_sample_ids(*, policy: Policy, n: int, seed: int = 0) -> list[int]:
    """Up to `n` items with a current gold label of `policy` and a task of that policy, sorted by id.

    Stratified by the current gold labels, with proportional allocation (largest remainder), and
    random within each stratum from `random.Random(seed)`: the same seed and gold give the same
    sample, and a rare label keeps its share instead of vanishing by chance.
    """
    if n < 1:
        return []
    has_task = ReviewTask.objects.filter(policy=policy).values("item_id")
    current = (
        GoldLabel.objects.filter(policy=policy, item_id__in=has_task)
        .order_by("item_id", "-version")
        .distinct("item_id")
        .values_list("item_id", "labels")
    )
    strata: dict[str, list[int]] = defaultdict(list)
    for item_id, labels in current:
        strata["|".join(sorted(labels or []))].append(item_id)
    total = sum(len(ids) for ids in strata.values())
    if total <= n:
        return sorted(item_id for ids in strata.values() for item_id in ids)
    keys = sorted(strata)
    quotas = {key: n * len(strata[key]) / total for key in keys}
    taken = {key: math.floor(quotas[key]) for key in keys}
    for key in sorted(keys, key=lambda k: (taken[k] - quotas[k], k))[: n - sum(taken.values())]:
        taken[key] += 1
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    sample = [item_id for key in keys for item_id in rng.sample(sorted(strata[key]), taken[key])]
    return sorted(sample)


# --------------------------------------------------------------------------- one chunk


@dataclass
class Answer:
    """One (item, variant) answer of a chunk, before it is stored."""

    item_id: int
    variant: str
    judgement: Judgement
    cached: bool
    cache_key: tuple[str, str, str] | None  # None: not cacheable (no text)


@dataclass(frozen=True)
class Claim:
    run: LLMRun
    position: int
    item_ids: list[int]


def llm_run_process_chunk(*, run_id: int) -> str:
    """Process the next chunk of a run; returns what happened: "more" (next chunk enqueued),
    "done", "budget", "stale" (another delivery stored this chunk first), or the run's finished
    status. Idempotent: safe to call again for the same run at any time."""
    claim = run_chunk_claim(run_id)
    if isinstance(claim, str):
        return str(claim)
    started = time.monotonic()
    answers = run_chunk_answer(claim)
    return str(run_chunk_store(claim, answers, elapsed=time.monotonic() - started))


def _budget_left(run: LLMRun) -> int:
    """How many items the run may still answer (its item budget and the list's end)."""
    left = len(run.item_ids) - run.position
    if run.budget_items is not None:
        left = min(left, run.budget_items - run.items_done)
    return max(left, 0)


def run_chunk_claim(run_id: int) -> Claim | str:
    """Lock the run briefly: re-check status and budgets, stamp the heartbeat, read the chunk."""
    with transaction.atomic():
        run = (
            LLMRun.objects.select_for_update(of=("self",))
            .select_related("reviewer__policy", "draft__base_version")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            return "missing"
        if run.status in FINISHED:
            return run.status
        if run.position >= len(run.item_ids):
            _finish(run, RunStatus.DONE)
            return RunStatus.DONE
        if _budget_left(run) == 0 or (run.budget_tokens is not None and run.tokens_used >= run.budget_tokens):
            _finish(run, RunStatus.BUDGET)
            return RunStatus.BUDGET
        size = min(run.chunk_size, _budget_left(run))
        if run.reviewer.requests_per_minute:
            size = min(size, max(1, run.reviewer.requests_per_minute // len(run.variants)))
        run.status = RunStatus.RUNNING
        run.heartbeat_at = timezone.now()
        run.save(update_fields=["status", "heartbeat_at"])
        return Claim(run=run, position=run.position, item_ids=run.item_ids[run.position : run.position + size])


def _prompt_for(run: LLMRun, variant: str) -> PolicyPrompt:
    if variant == "draft":
        return policy_prompt(run.reviewer, draft=run.draft)
    if variant == "current":
        return policy_prompt(run.reviewer, version=run.draft.base_version)  # type: ignore[union-attr]
    return policy_prompt(run.reviewer)


def _injection_target(prompt: PolicyPrompt, plain_label: str | None) -> str:
    """The title of the first label of the schema the plain answer was not."""
    for label in prompt.labels:
        if label.value != plain_label:
            return label.title
    return prompt.labels[0].title


def run_chunk_answer(claim: Claim) -> list[Answer]:
    """Every (item, variant) answer of the chunk: cache first, then the backend (no transaction)."""
    run = claim.run
    texts = {item.pk: item_text(item) for item in ContentItem.objects.filter(pk__in=claim.item_ids)}
    backend = backend_for(run.reviewer)
    answers: list[Answer] = []
    plain: dict[int, str | None] = {}
    # The plain variant goes first: an injection aims at a label its plain answer was not.
    for variant in sorted(run.variants, key=lambda v: v in INJECTIONS):
        prompt = _prompt_for(run, "" if variant in INJECTIONS else variant)
        contents: dict[int, str] = {}
        for item_id in claim.item_ids:
            text = texts.get(item_id, "")
            if not text.strip():
                answers.append(Answer(item_id, variant, Judgement(label=None, abstain_reason=NO_TEXT), False, None))
            elif variant in INJECTIONS:
                contents[item_id] = inject(text, variant, _injection_target(prompt, plain.get(item_id)))
            else:
                contents[item_id] = text
        for answer in _answer_contents(backend, prompt, variant, contents):
            answers.append(answer)
            if variant == "":
                plain[answer.item_id] = answer.judgement.label
    order = {item_id: i for i, item_id in enumerate(claim.item_ids)}
    answers.sort(key=lambda a: (order[a.item_id], run.variants.index(a.variant)))
    return answers


def _answer_contents(backend: Any, prompt: PolicyPrompt, variant: str, contents: dict[int, str]) -> list[Answer]:
    keys = {item_id: (backend.model_key, prompt.prompt_hash, content_hash(text)) for item_id, text in contents.items()}
    hits = {
        (e.model_key, e.prompt_hash, e.content_hash): e
        for e in LLMCacheEntry.objects.filter(
            model_key=backend.model_key,
            prompt_hash=prompt.prompt_hash,
            content_hash__in={key[2] for key in keys.values()},
        )
    }
    answers = []
    missing = [item_id for item_id in contents if keys[item_id] not in hits]
    for item_id in contents:
        if (entry := hits.get(keys[item_id])) is not None:
            judgement = Judgement(
                label=entry.label or None,
                scores=entry.scores,
                abstain_reason=entry.abstain_reason,
                prompt_tokens=entry.prompt_tokens,
                completion_tokens=entry.completion_tokens,
                latency_ms=entry.latency_ms,
            )
            answers.append(Answer(item_id, variant, judgement, True, keys[item_id]))
    if missing:
        judged = backend.judge(prompt, [contents[item_id] for item_id in missing])
        for item_id, judgement in zip(missing, judged, strict=True):
            answers.append(Answer(item_id, variant, judgement, False, keys[item_id]))
    return answers


def run_chunk_store(claim: Claim, answers: list[Answer], *, elapsed: float) -> str:
    """One transaction: judgements, annotations, cache entries, counters and `position`, only if
    the run is still running at the claimed position (compare-and-set)."""
    fresh = [a for a in answers if not a.cached]
    by_item: dict[int, list[Answer]] = defaultdict(list)
    for answer in answers:
        by_item[answer.item_id].append(answer)
    with transaction.atomic():
        run = (
            LLMRun.objects.select_for_update(of=("self",))
            .select_related("reviewer__policy", "reviewer__account")
            .get(pk=claim.run.pk)
        )
        if run.status != RunStatus.RUNNING or run.position != claim.position:
            return "stale"
        judgements = _write_judgements(run, answers)
        _write_cache(fresh)
        annotations = _write_annotations(run, judgements) if run.kind in ANNOTATING_KINDS else []
        run.position = claim.position + len(claim.item_ids)
        run.items_done += len(claim.item_ids)
        run.items_cached += sum(all(a.cached for a in item) for item in by_item.values())
        run.items_abstained += sum(any(a.judgement.abstained for a in item) for item in by_item.values())
        run.tokens_used += sum(a.judgement.prompt_tokens + a.judgement.completion_tokens for a in fresh)
        run.model_ms += round(sum(a.judgement.latency_ms for a in fresh))
        run.heartbeat_at = timezone.now()
        counters = ["position", "items_done", "items_cached", "items_abstained", "tokens_used", "model_ms"]
        run.save(update_fields=[*counters, "heartbeat_at"])
        audit_record(
            actor=Actor(run.reviewer.account_id, run.reviewer.account.username),
            action="llm_run.chunk",
            object_type="llm_run",
            object_id=run.pk,
            before={"position": claim.position},
            after={
                "position": run.position,
                "judgements": len(judgements),
                "cached": len(answers) - len(fresh),
                "annotation_ids": [a.pk for a in annotations],
            },
        )
        outcome = _next_step(run, requests=len(fresh), elapsed=elapsed)
    if run.kind == RunKind.SCORING:
        llm_decisions_record(run_id=run.pk, judgement_ids=[j.pk for j in judgements])
    return outcome


def _next_step(run: LLMRun, *, requests: int, elapsed: float) -> str:
    """Finish the run or enqueue its next chunk (after commit), keeping to requests_per_minute."""
    if run.position >= len(run.item_ids):
        _finish(run, RunStatus.DONE)
        return RunStatus.DONE
    if _budget_left(run) == 0 or (run.budget_tokens is not None and run.tokens_used >= run.budget_tokens):
        _finish(run, RunStatus.BUDGET)
        return RunStatus.BUDGET
    countdown = 0.0
    if run.reviewer.requests_per_minute and requests:
        countdown = max(0.0, requests * 60 / run.reviewer.requests_per_minute - elapsed)
    enqueue_chunk(run.pk, countdown=countdown)
    return "more"


def _write_judgements(run: LLMRun, answers: list[Answer]) -> list[LLMJudgement]:
    """One judgement per answer; a cached one keeps the latency and tokens the model spent
    when it first answered (the run's counters leave them out)."""
    return LLMJudgement.objects.bulk_create(
        [
            LLMJudgement(
                run=run,
                item_id=a.item_id,
                variant=a.variant,
                label=a.judgement.label or "",
                scores=a.judgement.scores,
                abstain_reason=a.judgement.abstain_reason[:200],
                cached=a.cached,
                latency_ms=round(a.judgement.latency_ms),
                prompt_tokens=a.judgement.prompt_tokens,
                completion_tokens=a.judgement.completion_tokens,
            )
            for a in answers
        ]
    )


def _write_cache(fresh: list[Answer]) -> None:
    """Remember fresh answers (abstentions for no text are not the model's, so not cached)."""
    LLMCacheEntry.objects.bulk_create(
        [
            LLMCacheEntry(
                model_key=a.cache_key[0],
                prompt_hash=a.cache_key[1],
                content_hash=a.cache_key[2],
                label=a.judgement.label or "",
                scores=a.judgement.scores,
                abstain_reason=a.judgement.abstain_reason[:200],
                latency_ms=round(a.judgement.latency_ms),
                prompt_tokens=a.judgement.prompt_tokens,
                completion_tokens=a.judgement.completion_tokens,
            )
            for a in fresh
            if a.cache_key is not None
        ],
        ignore_conflicts=True,
    )


def _annotation_tasks(run: LLMRun, item_ids: list[int]) -> dict[int, int]:
    """item id -> the task an LLM annotation attaches to: for a gold sample the gold label's task,
    else (and for queue runs) the newest task of (item, policy), in the run's queue if it has one."""
    policy_id = run.reviewer.policy_id
    found: dict[int, int] = {}
    if run.kind == RunKind.GOLD_SAMPLE:
        gold = (
            GoldLabel.objects.filter(policy_id=policy_id, item_id__in=item_ids, task__isnull=False)
            .order_by("item_id", "-version")
            .distinct("item_id")
            .values_list("item_id", "task_id")
        )
        found.update(gold)
    tasks = ReviewTask.objects.filter(policy_id=policy_id, item_id__in=set(item_ids) - set(found))
    if run.queue_id:
        tasks = tasks.filter(queue_id=run.queue_id)
    found.update(tasks.order_by("item_id", "-created_at", "-pk").distinct("item_id").values_list("item_id", "pk"))
    return found


def _write_annotations(run: LLMRun, judgements: list[LLMJudgement]) -> list[Annotation]:
    """An annotation of the machine account per non-abstained plain answer; skipped where the
    account already has a live annotation on (item, policy). Task counters are left alone: LLM
    annotations never count towards a task's required answers or its consensus."""
    reviewer = run.reviewer
    plain = [j for j in judgements if j.variant == "" and j.label]
    if not plain:
        return []
    # Two runs of one reviewer may cover the same items: lock the reviewer (after the run, as
    # everywhere here) so their chunks check "already annotated" and insert one after the other.
    LLMReviewer.objects.select_for_update().filter(pk=reviewer.pk).first()
    already = set(
        Annotation.objects.filter(
            reviewer_id=reviewer.account_id,
            policy_id=reviewer.policy_id,
            item_id__in=[j.item_id for j in plain],
            retracted_at__isnull=True,
        ).values_list("item_id", flat=True)
    )
    tasks = _annotation_tasks(run, [j.item_id for j in plain])
    version: PolicyVersion = reviewer.policy_version
    made: list[tuple[LLMJudgement, Annotation]] = []
    for j in plain:
        if j.item_id in already or j.item_id not in tasks:
            continue
        annotation = Annotation(
            task_id=tasks[j.item_id],
            item_id=j.item_id,
            policy_id=reviewer.policy_id,
            policy_version=version,
            reviewer_id=reviewer.account_id,
            submission_id=uuid.uuid5(SUBMISSION_NAMESPACE, f"{run.pk}:{j.item_id}:{j.variant}"),
            labels=[j.label],
            handle_time_ms=j.latency_ms,
            source=AnnotationSource.LLM,
        )
        made.append((j, annotation))
    Annotation.objects.bulk_create([a for _, a in made])
    for j, annotation in made:
        j.annotation = annotation
    LLMJudgement.objects.bulk_update([j for j, _ in made], ["annotation"])
    return [a for _, a in made]
