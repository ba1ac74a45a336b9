"""Configuring LLM reviewers: create and update, each with its machine account and audit trail.

An LLM reviewer labels through its own machine `account` (a User that cannot sign in), so its
annotations sit beside the humans' in every agreement figure. The API key is stored encrypted
and never returned: an update with an empty key keeps the stored one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.text import slugify

from activelearning.llm.prompts import TemplateError, check_template
from labeling.models import Policy, PolicyVersion
from reviewapp.audit import Actor, audit_record
from reviewapp.outbound import UnsafeTarget

from ..addresses import check_base_url
from ..models import DEFAULT_TEMPLATE, BackendKind, LLMReviewer

MAX_REQUESTS_PER_MINUTE = 100_000
MAX_TIMEOUT_SECONDS = 600
MAX_RETRIES = 10
# What an audit event may say about a reviewer (never the key, only whether one is set).
AUDITED_FIELDS = (
    "name",
    "backend",
    "model_name",
    "base_url",
    "policy_version_id",
    "timeout_seconds",
    "max_retries",
    "requests_per_minute",
    "cost_per_million_tokens",
    "is_active",
)


def check_endpoint_url(base_url: str) -> None:
    """The shape of an OpenAI-compatible base URL (no query or fragment), then the webhook address
    policy for LLM endpoints (`labeling.llm.addresses`): https to public addresses only, unless an
    operator listed the host in REVIEWAPP_LLM_ALLOWED_HOSTS; never credentials in the URL."""
    parts = urlsplit(base_url)
    if parts.fragment or parts.query:
        raise ValidationError({"base_url": "The base URL takes no query string or fragment."})
    try:
        check_base_url(base_url)
    except UnsafeTarget as error:
        raise ValidationError({"base_url": error.messages}) from None


def check_reviewer_config(
    *,
    name: str,
    policy: Policy,
    policy_version: PolicyVersion,
    backend: str,
    model_name: str,
    base_url: str,
    prompt_template: str,
    timeout_seconds: int,
    max_retries: int,
    requests_per_minute: int,
    cost_per_million_tokens: Decimal,
) -> None:
    """Raise a ValidationError naming every bad field."""
    errors: dict[str, str] = {}
    if not name.strip() or not slugify(name):
        errors["name"] = "Give the reviewer a name with at least one letter or digit."
    if backend not in BackendKind.values:
        errors["backend"] = f"Choose one of: {', '.join(BackendKind.values)}."
    if not model_name.strip():
        errors["model_name"] = "Name the model as the backend knows it."
    if policy_version.policy_id != policy.pk:
        errors["policy_version"] = "That version belongs to another policy."
    try:
        check_template(prompt_template)
    except TemplateError as error:
        errors["prompt_template"] = str(error)
    if not 1 <= timeout_seconds <= MAX_TIMEOUT_SECONDS:
        errors["timeout_seconds"] = f"Between 1 and {MAX_TIMEOUT_SECONDS} seconds."
    if not 0 <= max_retries <= MAX_RETRIES:
        errors["max_retries"] = f"Between 0 and {MAX_RETRIES}."
    if not 0 <= requests_per_minute <= MAX_REQUESTS_PER_MINUTE:
        errors["requests_per_minute"] = f"Between 0 (no limit) and {MAX_REQUESTS_PER_MINUTE}."
    if cost_per_million_tokens < 0:
        errors["cost_per_million_tokens"] = "A cost cannot be negative."
    if backend == BackendKind.OPENAI:
        if not base_url:
            errors["base_url"] = "An OpenAI-compatible backend needs its base URL."
        else:
            try:
                check_endpoint_url(base_url)
            except ValidationError as error:
                errors.update({field: messages[0] for field, messages in error.message_dict.items()})
    if errors:
        raise ValidationError(errors)


def _machine_account(name: str) -> User:
    """A new account that labels for the reviewer and can never sign in."""
    base = f"llm-{slugify(name)[:100]}"
    username, n = base, 1
    while User.objects.filter(username=username).exists():
        n += 1
        username = f"{base}-{n}"
    account = User(username=username, first_name=name[:150], is_active=False)
    account.set_unusable_password()
    account.save()
    return account


def _audited(reviewer: LLMReviewer) -> dict[str, Any]:
    state = {field: getattr(reviewer, field) for field in AUDITED_FIELDS}
    state["cost_per_million_tokens"] = str(reviewer.cost_per_million_tokens)
    state["api_key_set"] = bool(reviewer.api_key_ciphertext)
    state["prompt_template_chars"] = len(reviewer.prompt_template)
    return state


def llm_reviewer_create(
    *,
    name: str,
    policy: Policy,
    backend: str,
    model_name: str,
    base_url: str = "",
    api_key: str = "",
    prompt_template: str = DEFAULT_TEMPLATE,
    policy_version: PolicyVersion | None = None,
    timeout_seconds: int = 30,
    max_retries: int = 3,
    requests_per_minute: int = 0,
    cost_per_million_tokens: Decimal | int | str = 0,
    actor: Any,
) -> LLMReviewer:
    """Create a reviewer (with its machine account) for `policy_version`, default the current one."""
    version = policy_version or policy.current_version()
    if version is None:
        raise ValidationError({"policy_version": "The policy has no version in force yet."})
    cost = Decimal(str(cost_per_million_tokens))
    name = name.strip()
    check_reviewer_config(
        name=name,
        policy=policy,
        policy_version=version,
        backend=backend,
        model_name=model_name,
        base_url=base_url,
        prompt_template=prompt_template,
        timeout_seconds=timeout_seconds,
        max_retries=max_retries,
        requests_per_minute=requests_per_minute,
        cost_per_million_tokens=cost,
    )
    with transaction.atomic():
        if LLMReviewer.objects.filter(name=name).exists():
            raise ValidationError({"name": "An LLM reviewer with this name exists already."})
        reviewer = LLMReviewer(
            name=name,
            policy=policy,
            policy_version=version,
            backend=backend,
            model_name=model_name.strip(),
            base_url=base_url if backend == BackendKind.OPENAI else "",
            prompt_template=prompt_template,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            requests_per_minute=requests_per_minute,
            cost_per_million_tokens=cost,
            account=_machine_account(name),
            created_by=actor if isinstance(actor, User) else None,
        )
        reviewer.set_api_key(api_key if backend == BackendKind.OPENAI else "")
        reviewer.save()
        audit_record(
            actor=Actor.of(actor),
            action="llm_reviewer.create",
            object_type="llm_reviewer",
            object_id=reviewer.pk,
            after=_audited(reviewer),
        )
    return reviewer


def llm_reviewer_update(
    *,
    reviewer_id: int,
    name: str,
    policy_version: PolicyVersion,
    backend: str,
    model_name: str,
    base_url: str = "",
    api_key: str = "",
    clear_api_key: bool = False,
    prompt_template: str,
    timeout_seconds: int,
    max_retries: int,
    requests_per_minute: int,
    cost_per_million_tokens: Decimal | int | str,
    is_active: bool = True,
    actor: Any,
) -> LLMReviewer:
    """Change a reviewer's configuration. An empty `api_key` keeps the stored key (unless
    `clear_api_key`); the policy and the machine account never change. Locks the reviewer row."""
    cost = Decimal(str(cost_per_million_tokens))
    name = name.strip()
    with transaction.atomic():
        reviewer = LLMReviewer.objects.select_for_update().select_related("policy").get(pk=reviewer_id)
        check_reviewer_config(
            name=name,
            policy=reviewer.policy,
            policy_version=policy_version,
            backend=backend,
            model_name=model_name,
            base_url=base_url,
            prompt_template=prompt_template,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
            requests_per_minute=requests_per_minute,
            cost_per_million_tokens=cost,
        )
        if LLMReviewer.objects.filter(name=name).exclude(pk=reviewer.pk).exists():
            raise ValidationError({"name": "An LLM reviewer with this name exists already."})
        before = _audited(reviewer)
        reviewer.name = name
        reviewer.policy_version = policy_version
        reviewer.backend = backend
        reviewer.model_name = model_name.strip()
        reviewer.base_url = base_url if backend == BackendKind.OPENAI else ""
        reviewer.prompt_template = prompt_template
        reviewer.timeout_seconds = timeout_seconds
        reviewer.max_retries = max_retries
        reviewer.requests_per_minute = requests_per_minute
        reviewer.cost_per_million_tokens = cost
        reviewer.is_active = is_active
        if backend != BackendKind.OPENAI or clear_api_key:
            reviewer.set_api_key("")
        elif api_key:
            reviewer.set_api_key(api_key)
        reviewer.save()
        after = _audited(reviewer)
        if api_key and backend == BackendKind.OPENAI:
            after["api_key_changed"] = True
        audit_record(
            actor=Actor.of(actor),
            action="llm_reviewer.update",
            object_type="llm_reviewer",
            object_id=reviewer.pk,
            before=before,
            after=after,
        )
    return reviewer
