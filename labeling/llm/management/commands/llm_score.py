"""manage.py llm_score: an LLM reviewer scores items as an upstream model (decisions through ingest)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from reviewapp.audit import SYSTEM

from ...models import LLMReviewer
from ...services.scoring import llm_model_name
from ...services.scoring_jobs import llm_scoring_start, scoring_item_ids


class Command(BaseCommand):
    help = (
        "Start a scoring run of an LLM reviewer: its answers are ingested as model decisions named "
        "llm:<reviewer name>, routed by the policy's routing rule like any model's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reviewer", required=True, help="LLM reviewer name.")
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--since", help="Score the policy's items that arrived at or after this ISO 8601 time.")
        which.add_argument("--items", help="Comma-separated content item ids.")

    def handle(self, *args: Any, **options: Any) -> None:
        reviewer = LLMReviewer.objects.select_related("policy").filter(name=options["reviewer"]).first()
        if reviewer is None:
            raise CommandError(f"no LLM reviewer {options['reviewer']!r}")
        try:
            item_ids = scoring_item_ids(
                reviewer=reviewer, since=_since(options["since"]), item_ids=_ids(options["items"])
            )
            run = llm_scoring_start(reviewer=reviewer, item_ids=item_ids, actor=SYSTEM)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self.stdout.write(f"scoring run {run.pk}: {len(item_ids)} items as model {llm_model_name(reviewer)}")


def _since(value: str | None) -> Any:
    if value is None:
        return None
    parsed = parse_datetime(value)
    if parsed is None or parsed.tzinfo is None:
        raise CommandError("--since must be an ISO 8601 date-time with a time zone, e.g. 2026-12-01T00:00:00Z")
    return parsed


def _ids(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise CommandError("--items must be comma-separated integers") from None
