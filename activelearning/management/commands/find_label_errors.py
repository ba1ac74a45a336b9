"""manage.py find_label_errors: rank likely-wrong gold labels (confident learning); optionally queue them."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from activelearning.models import LabelErrorRun, RunStatus
from activelearning.services.out_of_fold import DEFAULT_FOLDS, label_error_run_execute, label_error_run_start
from labeling.models import Policy
from labeling.services.label_errors import LabelIssue, label_errors_find, label_errors_queue
from reviewapp.audit import SYSTEM
from reviewapp.models import Queue

OUT_OF_FOLD, UPSTREAM = "out-of-fold", "upstream"


class Command(BaseCommand):
    help = (
        "Rank the policy's current gold labels that a model says are likely wrong (cleanlab confident "
        "learning). By default the probabilities are out of fold: the active-learning head is trained k "
        "times on the gold, each fold scored by the head that left it out, here in this process (--enqueue "
        "hands the run to a Celery worker instead). --source upstream --model NAME uses a named upstream "
        "model's stored scores (refused for al-* models, which trained on this gold). With --queue, open "
        "label_error re-review tasks for the top ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--policy", required=True, help="Policy key.")
        parser.add_argument("--top-k", type=int, default=50, help="How many to show and queue (default 50).")
        parser.add_argument("--queue", help="Open label_error tasks for the top ones in this queue.")
        parser.add_argument("--source", choices=(OUT_OF_FOLD, UPSTREAM), default=OUT_OF_FOLD)
        parser.add_argument("--model", help="--source upstream: the upstream model whose stored scores to use.")
        parser.add_argument(
            "--positive-label", help="The harmful label (a binary head's target; an upstream score's label)."
        )
        parser.add_argument("--encoder", help="Out of fold: hashed, minilm or upstream (default: as a round).")
        parser.add_argument("--k", type=int, default=DEFAULT_FOLDS, help=f"Folds (default {DEFAULT_FOLDS}).")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the folds and heads (default 0).")
        parser.add_argument("--num-buckets", type=int, help="Hashed encoder: n-gram table rows.")
        parser.add_argument("--head", help='Head settings as JSON, e.g. \'{"hidden": 32, "max_epochs": 20}\'.')
        parser.add_argument("--enqueue", action="store_true", help="Run on a Celery worker; print the run id.")

    def handle(self, *args: Any, **options: Any) -> None:
        policy = Policy.objects.filter(key=options["policy"]).first()
        if policy is None:
            raise CommandError(f"no policy {options['policy']!r}")
        if options["top_k"] < 1:
            raise CommandError("--top-k must be at least 1")
        queue = self._queue(options["queue"])
        try:
            if options["source"] == UPSTREAM:
                self._upstream(policy, queue, options)
            else:
                self._out_of_fold(policy, queue, options)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error

    def _queue(self, slug: str | None) -> Queue | None:
        if slug is None:
            return None
        queue = Queue.objects.filter(slug=slug).first()
        if queue is None:
            raise CommandError(f"no queue {slug!r}")
        return queue

    def _out_of_fold(self, policy: Policy, queue: Queue | None, options: dict[str, Any]) -> None:
        if options["model"]:
            raise CommandError("--model names an upstream model: use it with --source upstream")
        params: dict[str, Any] = {"k": options["k"], "seed": options["seed"], "top_k": options["top_k"]}
        for key in ("encoder", "num_buckets", "positive_label"):
            if options[key] is not None:
                params[key] = options[key]
        if options["head"]:
            try:
                params["head"] = json.loads(options["head"])
            except json.JSONDecodeError as error:
                raise CommandError(f"--head is not JSON: {error}") from error
        if queue is not None:
            params["queue_id"] = queue.pk
        run = label_error_run_start(policy=policy, actor=SYSTEM, params=params, enqueue=options["enqueue"])
        if options["enqueue"]:
            self.stdout.write(f"out-of-fold run {run.pk} queued for a worker")
            return
        label_error_run_execute(run_id=run.pk)
        run = LabelErrorRun.objects.get(pk=run.pk)
        if run.status != RunStatus.SUCCEEDED:
            raise CommandError(f"out-of-fold run {run.pk} failed: {run.error}")
        self.stdout.write(
            f"out-of-fold run {run.pk}: {run.counts['scored']} gold labels (watermark {run.gold_watermark}) in "
            f"{run.k} folds grouped by text (seed {run.seed}, folds {run.fold_assignment_sha256[:12]}), "
            f"encoder {run.encoder_id}"
        )
        self._show([LabelIssue(**issue) for issue in run.candidates])
        summary = f"{run.candidates_found} likely label errors"
        if queue is not None:
            summary += f"; {len(run.task_ids)} label_error tasks opened in {queue.slug}"
        self.stdout.write(summary)

    def _upstream(self, policy: Policy, queue: Queue | None, options: dict[str, Any]) -> None:
        scores = {"model_name": options["model"], "positive_label": options["positive_label"]}
        if queue is None:
            self._show(label_errors_find(policy=policy, top_k=options["top_k"], **scores))
            return
        queued = label_errors_queue(policy=policy, queue=queue, top_k=options["top_k"], actor=SYSTEM, **scores)
        self._show(queued.candidates[: options["top_k"]])
        self.stdout.write(
            f"{len(queued.candidates)} likely label errors; {queued.already_queued} sent for re-review before; "
            f"{len(queued.task_ids)} label_error tasks opened in {queue.slug}"
        )

    def _show(self, issues: list[LabelIssue]) -> None:
        if not issues:
            self.stdout.write("no likely label errors (or too few gold labels with probabilities to tell)")
            return
        self.stdout.write(f"{'rank':>4}  {'item':>8}  {'gold':>8}  {'quality':>7}  given → suggested")
        for rank, issue in enumerate(issues, start=1):
            self.stdout.write(
                f"{rank:>4}  {issue.item_id:>8}  {issue.gold_id:>8}  {issue.quality:>7.3f}  "
                f"{issue.given} → {issue.suggested}"
            )
