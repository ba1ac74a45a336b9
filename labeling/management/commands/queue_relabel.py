"""manage.py queue_relabel: send gold labels given under an older policy version back for re-review."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.models import Policy, PolicyVersion
from labeling.services.relabel import RelabelDistribution, gold_queue_relabel, relabel_distribution
from reviewapp.audit import SYSTEM
from reviewapp.models import Queue


class Command(BaseCommand):
    help = (
        "Queue every item whose current gold label was given under --from-version (or older) for "
        "re-review under the version in force, then compare the labels of the items re-decided so far. "
        "Items already queued are not queued again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--policy", required=True, help="Policy key.")
        parser.add_argument("--from-version", type=int, required=True, help="Version number whose gold to re-review.")
        parser.add_argument("--queue", required=True, help="Slug of the queue the re-review tasks go to.")
        parser.add_argument("--limit", type=int, help="Queue at most N items (oldest gold labels first).")

    def handle(self, *args: Any, **options: Any) -> None:
        policy = _policy(options["policy"])
        from_version = _version(policy, options["from_version"])
        queue = Queue.objects.filter(slug=options["queue"]).first()
        if queue is None:
            raise CommandError(f"no queue {options['queue']!r}")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        try:
            queued = gold_queue_relabel(
                policy=policy, from_version=from_version, queue=queue, actor=SYSTEM, limit=options["limit"]
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        current = policy.current_version()
        assert current is not None  # gold_queue_relabel refuses a policy without a newer version
        self.stdout.write(
            f"{policy.key}: {queued.eligible} current gold labels under v{from_version.number} or older; "
            f"{queued.already_queued} queued before; {len(queued.task_ids)} relabel tasks opened in {queue.slug}"
        )
        report_distribution(self, relabel_distribution(policy=policy, from_version=from_version, to_version=current))


def _policy(key: str) -> Policy:
    policy = Policy.objects.filter(key=key).first()
    if policy is None:
        raise CommandError(f"no policy {key!r}")
    return policy


def _version(policy: Policy, number: int) -> PolicyVersion:
    version = policy.versions.filter(number=number).first()
    if version is None:
        raise CommandError(f"{policy.key} has no version {number}")
    return version


def report_distribution(command: BaseCommand, distribution: RelabelDistribution) -> None:
    """Print before/after label counts and shares, and the before × after table."""
    write = command.stdout.write
    if not distribution.items:
        write("no item re-decided under the new version yet")
        return
    write(f"re-decided so far: {distribution.items} items, {distribution.changed} changed label")
    before, after = distribution.share("before"), distribution.share("after")
    width = max(len(label) for label in distribution.labels)
    write(f"  {'label':<{width}}  {'before':>13}  {'after':>13}")
    for label in distribution.labels:
        write(
            f"  {label:<{width}}  {distribution.before[label]:>6} {before.get(label, 0):>6.1%}"
            f"  {distribution.after[label]:>6} {after.get(label, 0):>6.1%}"
        )
    write("  before → after:")
    for (old, new), count in sorted(distribution.confusion.items()):
        write(f"    {old} → {new}: {count}")
