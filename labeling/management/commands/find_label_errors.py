"""manage.py find_label_errors: rank likely-wrong gold labels (confident learning); optionally queue them."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Policy
from labeling.services.label_errors import LabelIssue, label_errors_find, label_errors_queue
from reviewapp.audit import SYSTEM
from reviewapp.models import Queue


class Command(BaseCommand):
    help = (
        "Rank the policy's current gold labels that stored model scores say are likely wrong "
        "(cleanlab confident learning); with --queue, open label_error re-review tasks for the top ones."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--policy", required=True, help="Policy key.")
        parser.add_argument("--top-k", type=int, default=50, help="How many to show and queue (default 50).")
        parser.add_argument("--queue", help="Open label_error tasks for the top ones in this queue.")
        parser.add_argument("--model", help="Use only this model's stored scores (default: newest per item).")
        parser.add_argument(
            "--positive-label", help="The label a model score is the probability of (default: the schema's first)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        policy = Policy.objects.filter(key=options["policy"]).first()
        if policy is None:
            raise CommandError(f"no policy {options['policy']!r}")
        if options["top_k"] < 1:
            raise CommandError("--top-k must be at least 1")
        scores = {"model_name": options["model"], "positive_label": options["positive_label"]}
        try:
            if options["queue"]:
                self._queue(policy, options["queue"], options["top_k"], scores)
            else:
                self._show(label_errors_find(policy=policy, top_k=options["top_k"], **scores))
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error

    def _queue(self, policy: Policy, slug: str, top_k: int, scores: dict[str, Any]) -> None:
        queue = Queue.objects.filter(slug=slug).first()
        if queue is None:
            raise CommandError(f"no queue {slug!r}")
        queued = label_errors_queue(policy=policy, queue=queue, top_k=top_k, actor=SYSTEM, **scores)
        self._show(queued.candidates[:top_k])
        self.stdout.write(
            f"{len(queued.candidates)} likely label errors; {queued.already_queued} sent for re-review before; "
            f"{len(queued.task_ids)} label_error tasks opened in {queue.slug}"
        )

    def _show(self, issues: list[LabelIssue]) -> None:
        if not issues:
            self.stdout.write("no likely label errors (or too few gold labels with model scores to tell)")
            return
        self.stdout.write(f"{'rank':>4}  {'item':>8}  {'gold':>8}  {'quality':>7}  given → suggested")
        for rank, issue in enumerate(issues, start=1):
            self.stdout.write(
                f"{rank:>4}  {issue.item_id:>8}  {issue.gold_id:>8}  {issue.quality:>7.3f}  "
                f"{issue.given} → {issue.suggested}"
            )
