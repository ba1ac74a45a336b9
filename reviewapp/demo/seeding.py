"""Seeding the demo: users, queues, policies with routing rules, an upstream token, the synthetic corpus.

Every service here is idempotent (it creates what is missing and leaves the rest alone), so
`manage.py seed_demo` can run on every `make run`. Each returns what it created; printing is the
command's job.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Count

from labeling.models import Policy
from reviewapp.audit import SYSTEM, Actor, audit_record
from reviewapp.models import Queue, ReviewTask, RoutingRule, ServiceToken, TaskStatus
from reviewapp.services.imports import PolicySpec, policy_ensure, queue_ensure
from reviewapp.services.ingest import decisions_ingest
from reviewapp.services.tokens import token_create

from .corpus import DemoPolicy, demo_decision_rows, demo_policies, demo_queues

GROUPS = ("reviewer", "policy_lead", "admin")
# username → (group, is_staff, is_superuser)
DEMO_USERS = {
    "reviewer": ("reviewer", False, False),
    "reviewer2": ("reviewer", False, False),
    "lead": ("policy_lead", True, False),
    "admin": ("admin", True, True),
}
DEMO_TOKEN = "demo-upstream"  # noqa: S105 - the token's name, not its secret
DEMO_TOKEN_SCOPES = ["appeals:write", "decisions:write"]  # ingest, and forward users' appeals


@dataclass(frozen=True)
class DemoCatalogue:
    """What `demo_catalogue_ensure` created (queue slugs, policy keys), in creation order."""

    created_queues: list[str]
    created_policies: list[str]


@dataclass(frozen=True)
class DemoIngest:
    """The outcome of ingesting the synthetic corpus: rows sent, decisions created, rows rejected,
    and the open tasks per queue afterwards."""

    rows: int
    created: int
    errors: int
    open_tasks: list[tuple[str, int]]


def demo_users_ensure() -> dict[str, str]:
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


def demo_catalogue_ensure() -> DemoCatalogue:
    """The demo queues (new ones get their member groups' users), policies and their routing rules."""
    queues = {}
    created_queues, created_policies = [], []
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
            created_queues.append(queue.slug)
        queues[spec.slug] = queue
    for policy_spec in demo_policies():
        _, created = policy_ensure(spec=_policy_spec(policy_spec), actor=SYSTEM)
        if created:
            created_policies.append(policy_spec.key)
        _routing_rule_ensure(policy_spec, queues, SYSTEM)
    return DemoCatalogue(created_queues=created_queues, created_policies=created_policies)


def demo_token_ensure() -> dict[str, str]:
    """The upstream token the demo ingests with; {"token <name>": secret} when created now, else {}.

    A token made by an earlier version of the demo gains the scopes it lacks (audited), so the
    README's requests work with the secret already saved in the logins file.
    """
    with transaction.atomic():
        existing = ServiceToken.objects.select_for_update().filter(name=DEMO_TOKEN).first()
        if existing is not None:
            _token_scopes_complete(existing)
            return {}
    _, secret = token_create(name=DEMO_TOKEN, scopes=DEMO_TOKEN_SCOPES, actor=SYSTEM)
    return {f"token {DEMO_TOKEN}": secret}


def _token_scopes_complete(token: ServiceToken) -> None:
    missing = sorted(set(DEMO_TOKEN_SCOPES) - set(token.scopes))
    if not missing:
        return
    before = list(token.scopes)
    token.scopes = sorted({*token.scopes, *missing})
    token.save(update_fields=["scopes"])
    audit_record(
        actor=SYSTEM,
        action="token.scopes_added",
        object_type="service_token",
        object_id=token.pk,
        before={"scopes": before},
        after={"scopes": token.scopes},
    )


def demo_reviewers_join(*, queue: Queue) -> None:
    """The demo reviewers and lead join `queue`, so the items of an imported dataset are served to them."""
    queue.members.add(*User.objects.filter(username__in=DEMO_USERS))


def demo_corpus_ingest() -> DemoIngest:
    """The synthetic corpus through the ingest path, in batches of INGEST_MAX_ROWS (idempotent)."""
    rows = demo_decision_rows()
    batch = settings.INGEST_MAX_ROWS
    created = errors = 0
    for start in range(0, len(rows), batch):
        result = decisions_ingest(rows=rows[start : start + batch], actor=SYSTEM)
        created += result.created
        errors += len(result.errors)
    open_tasks = (
        ReviewTask.objects.filter(status=TaskStatus.OPEN)
        .values_list("queue__slug")
        .annotate(count=Count("id"))
        .order_by("queue__slug")
    )
    return DemoIngest(rows=len(rows), created=created, errors=errors, open_tasks=list(open_tasks))


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


def demo_logins_write(*, path: Path, credentials: dict[str, str]) -> None:
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
