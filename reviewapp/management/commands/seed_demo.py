"""manage.py seed_demo: demo users, policies, queues, routing rules, a token and data. Idempotent."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.db.models import Count

from labeling.datasets import DatasetError
from labeling.models import Policy
from labeling.services.crowd import CROWD_FORMATS
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.demo import DemoPolicy, demo_decision_rows, demo_policies, demo_queues
from reviewapp.models import Queue, ReviewTask, RoutingRule, ServiceToken, TaskStatus
from reviewapp.services.imports import FORMATS, PolicySpec, dataset_guess_format, policy_ensure, queue_ensure
from reviewapp.services.ingest import decisions_ingest
from reviewapp.services.tokens import token_create

from .import_dataset import annotations_import_or_fail, import_or_fail, report_annotations, report_import

GROUPS = ("reviewer", "policy_lead", "admin")
# username → (group, is_staff, is_superuser)
DEMO_USERS = {
    "reviewer": ("reviewer", False, False),
    "reviewer2": ("reviewer", False, False),
    "lead": ("policy_lead", True, False),
    "admin": ("admin", True, True),
}
DEMO_TOKEN = "demo-upstream"  # noqa: S105 - the token's name, not its secret
DEMO_TOKEN_SCOPES = ["decisions:write"]
# Enough real items for agreement numbers and a few adjudications, small enough for `make run`.
DEMO_DATA_LIMIT = 2000


class Command(BaseCommand):
    help = (
        "Create demo users, policies, queues, routing rules and an upstream token, then load data: the "
        "synthetic demo corpus through the ingest path, or a dataset with --data. Safe to run repeatedly."
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
        credentials = self._users()
        self._policies_and_queues()
        credentials.update(self._token())
        self._report_credentials(credentials, logins_path)
        if data is not None:
            self._import_data(data, fmt or "", options["limit"] or None, items_only=options["items_only"])
        else:
            self._ingest_demo_rows()

    def _import_data(self, data: Path, fmt: str, limit: int | None, *, items_only: bool) -> None:
        """A dataset with per-annotator labels arrives as crowd annotations, resolved into gold and
        adjudications; the demo reviewers and lead join its queue so items a lead sends back are served."""
        if items_only or fmt not in CROWD_FORMATS:
            report_import(self, import_or_fail(fmt=fmt, path=data, limit=limit))
            return
        crowd = annotations_import_or_fail(fmt=fmt, path=data, limit=limit)
        report_import(self, crowd.dataset)
        report_annotations(self, crowd.annotations)
        crowd.dataset.queue.members.add(*User.objects.filter(username__in=DEMO_USERS))

    @staticmethod
    def _guess(data: Path) -> str:
        if not data.exists():
            raise CommandError(f"{data} does not exist")
        try:
            return dataset_guess_format(data)
        except DatasetError as error:
            raise CommandError(f"{error} (pass --format)") from error

    def _users(self) -> dict[str, str]:
        """Create missing groups and users; return {"user <name>": password} for the new ones."""
        created: dict[str, str] = {}
        with transaction.atomic():
            groups = {name: Group.objects.get_or_create(name=name)[0] for name in GROUPS}
            for username, (group, is_staff, is_superuser) in DEMO_USERS.items():
                if User.objects.filter(username=username).exists():
                    continue
                password = secrets.token_urlsafe(12)
                user = User.objects.create_user(
                    username=username, password=password, is_staff=is_staff, is_superuser=is_superuser
                )
                user.groups.add(groups[group])
                # Queues seeded on an earlier run; on the first run the queues are created next.
                user.review_queues.add(*_queues_for_group(group))
                audit_record(
                    actor=SYSTEM,
                    action="user.created",
                    object_type="user",
                    object_id=user.pk,
                    after={"username": username, "groups": [group], "is_staff": is_staff, "is_superuser": is_superuser},
                )
                created[f"user {username}"] = password
        return created

    def _policies_and_queues(self) -> None:
        queues = {}
        for spec in demo_queues():
            queue, created = queue_ensure(
                slug=spec.slug,
                actor=SYSTEM,
                name=spec.name,
                description=spec.description,
                kind=spec.kind,
                sla_minutes=spec.sla_minutes,
                lease_seconds=spec.lease_seconds,
                required_annotations=spec.required_annotations,
                blind_review=spec.blind_review,
            )
            if created:
                queue.members.add(*User.objects.filter(groups__name__in=spec.member_groups))
                self.stdout.write(f"created queue {queue.slug}")
            queues[spec.slug] = queue
        for policy_spec in demo_policies():
            _, created = policy_ensure(spec=_policy_spec(policy_spec), actor=SYSTEM)
            if created:
                self.stdout.write(f"created policy {policy_spec.key} (version 1)")
            _routing_rule_ensure(policy_spec, queues, SYSTEM)

    def _token(self) -> dict[str, str]:
        if ServiceToken.objects.filter(name=DEMO_TOKEN).exists():
            return {}
        _, secret = token_create(name=DEMO_TOKEN, scopes=DEMO_TOKEN_SCOPES, actor=SYSTEM)
        return {f"token {DEMO_TOKEN}": secret}

    def _report_credentials(self, credentials: dict[str, str], path: Path) -> None:
        if not credentials:
            self.stdout.write(f"demo users and the {DEMO_TOKEN} token already exist; their logins are in {path}")
            return
        try:
            write_logins(path, credentials)
            where = f"also saved to {path}"
        except OSError as error:
            where = f"could NOT be saved to {path} ({error}); copy them now"
        self.stdout.write(f"new demo logins (shown once, {where}):")
        for label, secret in credentials.items():
            self.stdout.write(f"  {label}: {secret}")

    def _ingest_demo_rows(self) -> None:
        rows = demo_decision_rows()
        batch = settings.INGEST_MAX_ROWS
        created = errors = 0
        for start in range(0, len(rows), batch):
            result = decisions_ingest(rows=rows[start : start + batch], actor=SYSTEM)
            created += result.created
            errors += len(result.errors)
        if errors:
            raise CommandError(f"{errors} demo rows were rejected by ingest; the demo corpus and validation disagree")
        if created:
            self.stdout.write(f"ingested {created} demo decisions ({len(rows) - created} already present)")
        else:
            self.stdout.write(f"nothing new: all {len(rows)} demo decisions were ingested before")
        open_tasks = (
            ReviewTask.objects.filter(status=TaskStatus.OPEN)
            .values_list("queue__slug")
            .annotate(count=Count("id"))
            .order_by("queue__slug")
        )
        self.stdout.write("open tasks: " + ", ".join(f"{slug} {count}" for slug, count in open_tasks))


def _queues_for_group(group: str) -> list[Queue]:
    slugs = [spec.slug for spec in demo_queues() if group in spec.member_groups]
    return list(Queue.objects.filter(slug__in=slugs))


def _policy_spec(policy: DemoPolicy) -> PolicySpec:
    return PolicySpec(
        key=policy.key,
        name=policy.name,
        guideline=policy.guideline,
        label_schema=policy.label_schema,
        severity_weight=policy.severity_weight,
    )


def _routing_rule_ensure(spec: DemoPolicy, queues: dict[str, Queue], actor: Actor) -> None:
    """The policy's any-model rule, created from the demo spec when the policy has none."""
    with transaction.atomic():
        rule, created = RoutingRule.objects.get_or_create(
            policy=Policy.objects.get(key=spec.key),
            model_name=RoutingRule.ANY_MODEL,
            defaults={
                "auto_clear": spec.auto_clear,
                "auto_action": spec.auto_action,
                "audit_rate_clear": spec.audit_rate_clear,
                "audit_rate_action": spec.audit_rate_action,
                "queue": queues[spec.queue],
                "audit_queue": queues[spec.audit_queue],
            },
        )
        if created:
            audit_record(
                actor=actor,
                action="routing_rule.created",
                object_type="routing_rule",
                object_id=rule.pk,
                after={
                    "policy": spec.key,
                    "model_name": rule.model_name,
                    "auto_clear": rule.auto_clear,
                    "auto_action": rule.auto_action,
                    "audit_rate_clear": rule.audit_rate_clear,
                    "audit_rate_action": rule.audit_rate_action,
                    "queue": spec.queue,
                    "audit_queue": spec.audit_queue,
                },
            )


def write_logins(path: Path, credentials: dict[str, str]) -> None:
    """Merge `credentials` into the logins file, readable by the owner only (0600).

    Entries for the same user or token replace older ones (a database reset re-creates them).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    entries: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            label, sep, secret = line.rpartition(": ")
            if sep and not line.startswith("#"):
                entries[label] = secret
    entries.update(credentials)
    lines = ["# reviewapp demo logins, written by manage.py seed_demo. Keep private."]
    lines += [f"{label}: {secret}" for label, secret in entries.items()]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an older file may have been created with wider rights
        handle.write("\n".join(lines) + "\n")
