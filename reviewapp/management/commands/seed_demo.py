"""manage.py seed_demo: demo users, policies, queues, routing rules, a token, data, and the leads' pages. Idempotent.

A thin shell: the services are in reviewapp/demo/seeding.py, reviewapp/demo/lead_pages.py and
reviewapp/demo/real_data.py, the synthetic corpus in reviewapp/demo/corpus.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.datasets import CONVABUSE, DatasetError
from labeling.models import Policy
from labeling.services.crowd import CROWD_FORMATS
from reviewapp.demo.corpus import CROWD_POLICY
from reviewapp.demo.lead_pages import (
    APPEAL_STATEMENTS,
    demo_appeals_ensure,
    demo_crowd_ensure,
    demo_dataset_ensure,
    demo_llm_reviewer_ensure,
    demo_round_ensure,
    gold_appeal_candidates,
    synthetic_appeal_candidates,
)
from reviewapp.demo.real_data import LABELLED_RECORDS, demo_data_find, demo_pool_ensure
from reviewapp.demo.seeding import (
    DEMO_TOKEN,
    DEMO_USERS,
    demo_catalogue_ensure,
    demo_corpus_ingest,
    demo_logins_write,
    demo_reviewers_join,
    demo_token_ensure,
    demo_users_ensure,
)
from reviewapp.services.imports import FORMATS, dataset_guess_format

from .import_dataset import annotations_import_or_fail, import_or_fail, report_annotations, report_import

# Enough real items for agreement numbers and a few adjudications, small enough for `make run`.
DEMO_DATA_LIMIT = 2000


class Command(BaseCommand):
    help = (
        "Create demo users, policies, queues, routing rules and an upstream token, then load data: the "
        "synthetic demo corpus through the ingest path, with real ConvAbuse crowd labels for the leads' pages "
        "when ConvAbuse is in REVIEWAPP_DATA_DIR (else simulated annotators' answers), or a dataset with --data; "
        "then open appeals, build a dataset version and start an active-learning round for the worker. "
        "Safe to run repeatedly."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data",
            help=(
                "Import this dataset (folder or file) instead of the synthetic corpus, e.g. "
                f"{settings.REVIEWAPP_DATA_DIR}/convabuse (REVIEWAPP_DATA_DIR; `make data` fetches it)."
            ),
        )
        parser.add_argument("--format", choices=FORMATS, help="Format of --data (default: guessed from the path).")
        parser.add_argument(
            "--limit",
            type=int,
            default=DEMO_DATA_LIMIT,
            help=f"Import the first N records of --data (default {DEMO_DATA_LIMIT}); --limit 0 imports them all.",
        )
        parser.add_argument(
            "--items-only",
            action="store_true",
            help="Toxic Spans, ConvAbuse: import items and open tasks only, not the crowd labels as annotations.",
        )
        parser.add_argument(
            "--logins-file",
            default=str(Path(settings.BASE_DIR) / ".run" / "demo-logins.txt"),
            help="Where new passwords and the token secret are written (mode 0600).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        logins_path = Path(options["logins_file"])
        data = Path(options["data"]) if options["data"] else None
        fmt = options["format"]
        if data is not None and fmt is None:
            fmt = self._guess(data)  # fail on a bad path before creating anything
        credentials = demo_users_ensure()
        catalogue = demo_catalogue_ensure()
        for slug in catalogue.created_queues:
            self.stdout.write(f"created queue {slug}")
        for key in catalogue.created_policies:
            self.stdout.write(f"created policy {key} (version 1)")
        credentials.update(demo_token_ensure())
        self._report_credentials(credentials, logins_path)
        if data is not None:
            policy = self._import_data(data, fmt or "", options["limit"] or None, items_only=options["items_only"])
            # Crowd datasets' schemas put the violating label first: appeals contest such gold.
            crowd = fmt in CROWD_FORMATS and not options["items_only"]
            appeals = gold_appeal_candidates(policy=policy, limit=len(APPEAL_STATEMENTS)) if crowd else []
        else:
            self._ingest_demo_rows()
            real = demo_data_find(data_dir=Path(settings.REVIEWAPP_DATA_DIR))
            if real.folder is not None:
                self.stdout.write(f"leads' pages: real ConvAbuse crowd labels ({real.reason})")
                policy = self._real_crowd(real.folder)
                appeals = gold_appeal_candidates(policy=policy, limit=len(APPEAL_STATEMENTS))
            else:
                self.stdout.write(f"leads' pages: simulated demo annotators ({real.reason})")
                self._demo_crowd()
                policy = Policy.objects.get(key=CROWD_POLICY)
                appeals = synthetic_appeal_candidates()
        self._lead_pages(policy, appeals)

    def _import_data(self, data: Path, fmt: str, limit: int | None, *, items_only: bool) -> Policy:
        """A dataset with per-annotator labels arrives as crowd annotations, resolved into gold and
        adjudications; the demo reviewers and lead join its queue so items a lead sends back are served."""
        if items_only or fmt not in CROWD_FORMATS:
            outcome = import_or_fail(fmt=fmt, path=data, limit=limit)
            report_import(self, outcome)
            return outcome.policy
        crowd = annotations_import_or_fail(fmt=fmt, path=data, limit=limit)
        report_import(self, crowd.dataset)
        report_annotations(self, crowd.annotations)
        demo_reviewers_join(queue=crowd.dataset.queue)
        return crowd.dataset.policy

    def _real_crowd(self, folder: Path) -> Policy:
        """ConvAbuse's first examples with their annotators' labels, the next ones as the round's pool."""
        self.stdout.write(f"importing the first {LABELLED_RECORDS} ConvAbuse examples with their crowd labels")
        policy = self._import_data(folder, CONVABUSE, LABELLED_RECORDS, items_only=False)
        pool = demo_pool_ensure(folder=folder)
        self.stdout.write(
            f"round pool: the next {pool.records} ConvAbuse examples as unlabelled items "
            f"({pool.created} created, {pool.existing} already present)"
        )
        return policy

    def _demo_crowd(self) -> None:
        crowd = demo_crowd_ensure(reviewers=list(DEMO_USERS))
        if crowd.answers.created_anything:
            report_annotations(self, crowd.answers)
        else:
            self.stdout.write("demo annotators' answers: all stored and resolved before")

    def _lead_pages(self, policy: Policy, appeal_candidates: list[tuple[str, str, str]]) -> None:
        """Appeals with statements, a dataset version and a first round: each once, ever."""
        opened = demo_appeals_ensure(candidates=appeal_candidates)
        if opened:
            self.stdout.write(f"opened {len(opened)} appeals in the appeals queue")
        self.stdout.write(demo_dataset_ensure(policy=policy))
        self.stdout.write(demo_round_ensure(policy=policy))
        self.stdout.write(demo_llm_reviewer_ensure(policy=policy))

    @staticmethod
    def _guess(data: Path) -> str:
        if not data.exists():
            raise CommandError(f"{data} does not exist")
        try:
            return dataset_guess_format(data)
        except DatasetError as error:
            raise CommandError(f"{error} (pass --format)") from error

    def _report_credentials(self, credentials: dict[str, str], path: Path) -> None:
        if not credentials:
            self.stdout.write(f"demo users and the {DEMO_TOKEN} token already exist; their logins are in {path}")
            return
        try:
            demo_logins_write(path=path, credentials=credentials)
            where = f"also saved to {path}"
        except OSError as error:
            where = f"could NOT be saved to {path} ({error}); copy them now"
        self.stdout.write(f"new demo logins (shown once, {where}):")
        for label, secret in credentials.items():
            self.stdout.write(f"  {label}: {secret}")

    def _ingest_demo_rows(self) -> None:
        result = demo_corpus_ingest()
        if result.errors:
            raise CommandError(
                f"{result.errors} demo rows were rejected by ingest; the demo corpus and validation disagree"
            )
        if result.created:
            self.stdout.write(
                f"ingested {result.created} demo decisions ({result.rows - result.created} already present)"
            )
        else:
            self.stdout.write(f"nothing new: all {result.rows} demo decisions were ingested before")
        self.stdout.write("open tasks: " + ", ".join(f"{slug} {count}" for slug, count in result.open_tasks))
