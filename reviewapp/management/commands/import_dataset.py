"""manage.py import_dataset: load a moderation dataset into review queues (idempotent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.datasets import TOXIC_RULES, TOXIC_SPANS, DatasetError, ToxicRule
from labeling.services.crowd import CROWD_FORMATS, CrowdDatasetImport, CrowdImportResult, dataset_import_annotations
from reviewapp.audit import SYSTEM
from reviewapp.services.imports import FORMATS, DatasetImport, TableColumns, dataset_import

MAX_INVALID_SHOWN = 10


class Command(BaseCommand):
    help = (
        "Import a dataset as content items with one backfill review task each. Toxic Spans and "
        "ConvAbuse take the dataset folder; csv and jsonl take a file. With --as-annotations, their "
        "crowd labels become annotations that are resolved into gold labels and adjudications. "
        "Re-running creates nothing new."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("format", choices=FORMATS, help="Dataset format.")
        parser.add_argument(
            "path",
            help=(
                "Dataset folder (toxic-spans, convabuse) or file (csv, jsonl). The public datasets are in the "
                f"data dir ({settings.REVIEWAPP_DATA_DIR}/toxic-spans, …/convabuse; `make data` fetches it)."
            ),
        )
        parser.add_argument(
            "--policy",
            help="Policy key (default: toxicity, abuse, or the file name). Created with a first version when missing.",
        )
        parser.add_argument("--queue", help="Queue slug (default: <policy>-review), created when missing.")
        parser.add_argument("--limit", type=int, help="Import only the first N records.")
        parser.add_argument("--text-col", default="text", help="csv/jsonl: text column (default: text).")
        parser.add_argument("--label-col", help="csv/jsonl: label column (default: 'label' when present).")
        parser.add_argument("--id-col", help="csv/jsonl: id column (default: 'id' when present, else row number).")
        parser.add_argument(
            "--toxic-spans-rule",
            choices=TOXIC_RULES,
            default="highlighted",
            help=(
                "toxic-spans: when a crowd worker counts as toxic. 'highlighted' (default): they highlighted a "
                "span or ticked 'all toxic' without 'not toxic'. 'dataset': the dataset authors' convention, "
                "toxic unless they ticked 'not toxic' (1,905 of 58,858 labels differ). Applies to items "
                "created by this run."
            ),
        )
        parser.add_argument(
            "--as-annotations",
            action="store_true",
            help=(
                "toxic-spans, convabuse: import every crowd worker's label as an annotation by a crowd reviewer "
                "account and resolve each item by consensus (default queue: <policy>-crowd); ties go to leads."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rule = options["toxic_spans_rule"]
        if rule != "highlighted" and options["format"] != TOXIC_SPANS:
            raise CommandError(f"--toxic-spans-rule applies to the toxic-spans format only, not {options['format']}")
        if options["as_annotations"]:
            crowd = annotations_import_or_fail(
                fmt=options["format"],
                path=Path(options["path"]),
                policy_key=options["policy"],
                queue_slug=options["queue"],
                limit=options["limit"],
                toxic_rule=rule,
            )
            report_import(self, crowd.dataset)
            report_annotations(self, crowd.annotations)
            return
        outcome = import_or_fail(
            fmt=options["format"],
            path=Path(options["path"]),
            policy_key=options["policy"],
            queue_slug=options["queue"],
            limit=options["limit"],
            columns=TableColumns(
                text=options["text_col"], label=options["label_col"] or "label", id=options["id_col"] or "id"
            ),
            toxic_rule=rule,
        )
        report_import(self, outcome)


def import_or_fail(
    *,
    fmt: str,
    path: Path,
    policy_key: str | None = None,
    queue_slug: str | None = None,
    limit: int | None = None,
    columns: TableColumns | None = None,
    toxic_rule: ToxicRule = "highlighted",
) -> DatasetImport:
    """Run `dataset_import`, turning input problems into CommandError (shared with seed_demo)."""
    if limit is not None and limit < 0:
        raise CommandError("--limit must be 0 or more")
    if not path.exists():
        raise CommandError(f"{path} does not exist")
    try:
        return dataset_import(
            fmt=fmt,
            path=path,
            actor=SYSTEM,
            policy_key=policy_key,
            queue_slug=queue_slug,
            limit=limit,
            columns=columns,
            toxic_rule=toxic_rule,
        )
    except DatasetError as error:
        raise CommandError(str(error)) from error
    except ValidationError as error:
        raise CommandError("; ".join(error.messages)) from error


def annotations_import_or_fail(
    *,
    fmt: str,
    path: Path,
    policy_key: str | None = None,
    queue_slug: str | None = None,
    limit: int | None = None,
    toxic_rule: ToxicRule = "highlighted",
) -> CrowdDatasetImport:
    """Run `dataset_import_annotations`, turning input problems into CommandError (shared with seed_demo)."""
    if fmt not in CROWD_FORMATS:
        raise CommandError(
            f"--as-annotations needs per-annotator labels, which only {' and '.join(CROWD_FORMATS)} carry; "
            f"a {fmt} file has one label column: import it without --as-annotations"
        )
    if limit is not None and limit < 0:
        raise CommandError("--limit must be 0 or more")
    if not path.exists():
        raise CommandError(f"{path} does not exist")
    try:
        return dataset_import_annotations(
            fmt=fmt,
            path=path,
            actor=SYSTEM,
            policy_key=policy_key,
            queue_slug=queue_slug,
            limit=limit,
            toxic_rule=toxic_rule,
        )
    except DatasetError as error:
        raise CommandError(str(error)) from error
    except ValidationError as error:
        raise CommandError("; ".join(error.messages)) from error


def report_annotations(command: BaseCommand, result: CrowdImportResult) -> None:
    """Print what a crowd annotations import did."""
    write = command.stdout.write
    write(
        f"annotations: {result.annotations_created} created, {result.annotations_existing} already present; "
        f"crowd reviewers: {result.users_created} created"
    )
    if result.repeats_skipped:
        write(f"  skipped {result.repeats_skipped} repeat answers (kept on the item for intra-annotator agreement)")
    if result.unattributed_skipped:
        write(f"  skipped {result.unattributed_skipped} answers without an annotator id")
    if result.records_without_task:
        write(f"  {result.records_without_task} records have no task (invalid items)")
    outcomes = ", ".join(f"{what} {count}" for what, count in sorted(result.outcomes.items())) or "none"
    write(f"tasks completed: {result.tasks_completed}; resolved: {outcomes}")


def report_import(command: BaseCommand, outcome: DatasetImport) -> None:
    """Print what an import did, in the command's output."""
    write = command.stdout.write
    for created, what, name in (
        (outcome.policy_created, "policy", outcome.policy.key),
        (outcome.queue_created, "queue", outcome.queue.slug),
    ):
        if created:
            write(f"created {what} {name}")
    stats, result = outcome.stats, outcome.result
    write(f"read {stats.records} records into {outcome.policy.key} / {outcome.queue.slug}")
    skipped = [
        (stats.skipped_empty, "with empty text"),
        (len(stats.excluded), "excluded as outliers"),
        (stats.spans_dropped, "spans outside their text"),
        (stats.annotations_dropped, "unreadable labels"),
    ]
    for count, why in skipped:
        if count:
            write(f"  skipped {count} {why}")
    write(
        f"items: {result.items_created} created, {result.items_existing} already present; "
        f"tasks: {result.tasks_created} created; invalid: {len(result.invalid)}"
    )
    for external_id, message in result.invalid[:MAX_INVALID_SHOWN]:
        write(f"  invalid {external_id}: {message}")
    if len(result.invalid) > MAX_INVALID_SHOWN:
        write(f"  … and {len(result.invalid) - MAX_INVALID_SHOWN} more invalid records")
    if not result.created_anything:
        write("nothing new: this data was imported before")
