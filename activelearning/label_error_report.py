"""What the label-error pages show: a policy's checks, and one check's ranked suspects with their evidence.

For each suspect: the item (an excerpt; templates escape it), the gold label and how it was
decided (source, the annotations behind it and their agreement), the out-of-fold probabilities
the head of its fold gave, its rank and confident-learning quality, and whether it was sent to
re-review or corrected since. For the run: what produced the probabilities (encoder, head
settings, k, seed, the gold it read and the hash of each fold's fit set).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from django.db.models import QuerySet

from labeling.models import Annotation, GoldLabel, Policy
from labeling.services.relabel import gold_current_labels, gold_with_pending_review, label_key
from reviewapp.models import Queue, ReviewTask, TaskReason

from .models import LabelErrorRun, OutOfFoldScore

EXCERPT_CHARS = 280


def label_error_runs(policy: Policy) -> QuerySet[LabelErrorRun]:
    """A policy's checks, newest first (the list page and the models page link)."""
    return (
        LabelErrorRun.objects.filter(policy=policy)
        .select_related("training_run")
        .defer("candidates", "folds", "hyperparameters", "encoder_config")
        .order_by("-created_at")
    )


def label_error_run_context(run: LabelErrorRun) -> dict[str, Any]:
    """The run page: provenance of the probabilities and one row per suspect, most suspicious first."""
    candidates = run.candidates or []
    gold_ids = [int(c["gold_id"]) for c in candidates]
    golds = {g.pk: g for g in GoldLabel.objects.filter(pk__in=gold_ids).select_related("item", "adjudicator")}
    scores = {
        s.item_id: s
        for s in OutOfFoldScore.objects.filter(run=run, item_id__in=[int(c["item_id"]) for c in candidates])
    }
    votes = _votes([g for g in golds.values()])
    current = set(gold_current_labels(policy=run.policy).filter(pk__in=gold_ids).values_list("pk", flat=True))
    sent = _sent_tasks(run, gold_ids)
    rows = []
    for rank, candidate in enumerate(candidates, start=1):
        gold = golds.get(int(candidate["gold_id"]))
        if gold is None:
            continue
        score = scores.get(gold.item_id)
        rows.append(
            {
                "rank": rank,
                "gold": gold,
                "excerpt": _excerpt(gold.item.text or gold.item.title),
                "given": candidate["given"],
                "suggested": candidate["suggested"],
                "quality": candidate["quality"],
                "p_given": candidate["p_given"],
                "probabilities": sorted((score.probabilities if score else {}).items(), key=lambda kv: -kv[1]),
                "fold": score.fold if score else None,
                "votes": votes.get(gold.pk, []),
                "current": gold.pk in current,
                "task": sent.get(gold.pk),
            }
        )
    return {
        "run": run,
        "rows": rows,
        "sendable": run.status == "succeeded" and any(r["current"] and r["task"] is None for r in rows),
        "queues": Queue.objects.filter(is_active=True).order_by("name"),
        "default_queue": run.params.get("queue_id"),
        "fold_rows": run.folds,
    }


def _excerpt(text: str) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _votes(golds: list[GoldLabel]) -> dict[int, list[tuple[str, int]]]:
    """gold id → [(label, annotations giving it)], most given first: the agreement behind the label."""
    wanted = {int(a) for g in golds for a in (g.annotation_ids or [])}
    labels = dict(Annotation.objects.filter(pk__in=wanted).values_list("pk", "labels"))
    out = {}
    for gold in golds:
        counts = Counter(label_key(labels[int(a)]) for a in gold.annotation_ids or [] if int(a) in labels)
        out[gold.pk] = counts.most_common()
    return out


def _sent_tasks(run: LabelErrorRun, gold_ids: list[int]) -> dict[int, ReviewTask]:
    """gold id → the label-error re-review task opened after it (open, with a lead, or done)."""
    pending = gold_with_pending_review(GoldLabel.objects.filter(pk__in=gold_ids), reason=TaskReason.LABEL_ERROR)
    by_item = {g.item_id: g.pk for g in pending.only("pk", "item_id")}
    tasks = ReviewTask.objects.filter(
        policy=run.policy, reason=TaskReason.LABEL_ERROR, item_id__in=list(by_item)
    ).select_related("queue")
    return {by_item[t.item_id]: t for t in tasks.order_by("created_at")}
