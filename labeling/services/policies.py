"""Creating a policy: its key, name and first version (guideline and label schema), in force at once.

Later versions come from drafts (`labeling.llm.services.drafts`): a policy is created once.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.db.models.functions import Now

from reviewapp.audit import Actor, audit_record

from ..models import Policy, PolicyVersion, check_label_schema

# Path segments under /lead/policies/ that are pages, not policy keys.
RESERVED_KEYS = frozenset({"new"})
MAX_NAME_CHARS = 200
MAX_GUIDELINE_CHARS = 100_000


def check_policy_fields(*, key: str, name: str, guideline: str, label_schema: Any, severity_weight: float) -> None:
    """Raise ValidationError naming each field that is wrong."""
    errors: dict[str, str] = {}
    try:
        validate_slug(key)
    except ValidationError:
        errors["key"] = "Use letters, digits, hyphens and underscores only."
    if len(key) > 64:
        errors["key"] = "At most 64 characters."
    elif key in RESERVED_KEYS:
        errors["key"] = f"'{key}' is reserved; choose another key."
    if not name.strip() or len(name) > MAX_NAME_CHARS:
        errors["name"] = f"Give the policy a name of 1–{MAX_NAME_CHARS} characters."
    if not guideline.strip():
        errors["guideline"] = "Write the guideline reviewers will read."
    elif len(guideline) > MAX_GUIDELINE_CHARS:
        errors["guideline"] = f"At most {MAX_GUIDELINE_CHARS:,} characters."
    if not severity_weight > 0:
        errors["severity_weight"] = "Must be greater than 0."
    try:
        check_label_schema(label_schema)
    except ValidationError as error:
        errors["label_schema"] = " ".join(error.messages)
    if errors:
        raise ValidationError(errors)


def policy_create(
    *, key: str, name: str, guideline: str, label_schema: Any, severity_weight: float = 1.0, actor: Actor
) -> Policy:
    """Create a policy and its version 1, in force from the database's now.

    Refuses (ValidationError) bad fields and a key already taken, even under a concurrent create
    (the unique key decides). Audit: `policy.created` with the first version's number and labels.
    """
    key, name = key.strip(), name.strip()
    check_policy_fields(
        key=key, name=name, guideline=guideline, label_schema=label_schema, severity_weight=severity_weight
    )
    try:
        with transaction.atomic():
            policy = Policy.objects.create(key=key, name=name, guideline=guideline, severity_weight=severity_weight)
            version = PolicyVersion.objects.create(
                policy=policy,
                number=1,
                guideline=guideline,
                label_schema=label_schema,
                effective_at=Now(),
                change_summary="",
                created_by_id=actor.id,
            )
            audit_record(
                actor=actor,
                action="policy.created",
                object_type="policy",
                object_id=policy.pk,
                after={
                    "key": key,
                    "name": name,
                    "severity_weight": severity_weight,
                    "version": version.number,
                    "labels": version.label_values,
                },
            )
    except IntegrityError:
        raise ValidationError({"key": f"A policy with the key '{key}' already exists."}) from None
    return policy
