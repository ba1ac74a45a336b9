"""Label Studio connections: create one, test it, accept its webhooks."""

from __future__ import annotations

import hmac

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models.functions import Now

from labeling.models import Policy
from reviewapp.audit import Actor, audit_record
from reviewapp.models import Queue

from ..addresses import check_base_url
from ..client import ANNOTATION_ACTIONS, Client
from ..models import Connection, SyncKind, SyncRun, validate_token_env_var
from .projects import project_config_check
from .sync_log import sync_run_log


def connection_create(
    *,
    name: str,
    base_url: str,
    policy: Policy,
    actor: Actor,
    token: str = "",
    token_env_var: str = "",
    queue: Queue | None = None,
    callback_base_url: str = "",
) -> Connection:
    """Store a connection; the token is encrypted at once and never written anywhere else.

    Raises ValidationError for a URL the address policy refuses (addresses.py: public https
    servers, or hosts an operator allowed) and for a token variable outside LABEL_STUDIO_TOKEN_*.
    """
    if not token and not token_env_var:
        raise ValidationError("Give an API token or the name of an environment variable holding it.")
    if token_env_var:
        validate_token_env_var(token_env_var)
    check_base_url(base_url)
    connection = Connection(
        name=name,
        base_url=base_url.rstrip("/"),
        token_env_var=token_env_var,
        policy=policy,
        queue=queue,
        callback_base_url=callback_base_url.rstrip("/"),
    )
    connection.set_api_token(token)
    connection.new_webhook_secret()
    with transaction.atomic():
        connection.save(force_insert=True)
        audit_record(
            actor=actor,
            action="labelstudio.connection_created",
            object_type="labelstudio_connection",
            object_id=connection.pk,
            after={"name": name, "base_url": connection.base_url, "policy": policy.key, "token_env_var": token_env_var},
        )
    return connection


def connection_test(*, connection_id: int, triggered_by: str) -> SyncRun:
    """Check the URL, the token and, once a project exists, that its config still matches."""
    connection = Connection.objects.get(pk=connection_id)
    with sync_run_log(connection, SyncKind.TEST, triggered_by) as run:
        client = Client(connection)
        run.counts["user"] = client.whoami()["email"]
        current = connection.projects.filter(is_current=True, missing_since__isnull=True).first()
        if current is not None:
            project_config_check(client, current)
            run.counts["project"] = current.ls_project_id
    return run


def webhook_accept(*, connection_id: int, secret: str, action: str) -> bool:
    """Authenticate a Label Studio webhook and enqueue a pull for annotation events.

    Cheap and idempotent: any number of deliveries enqueue incremental pulls, which import each
    annotation once. Raises PermissionDenied for an unknown connection or a wrong secret.
    """
    connection = Connection.objects.filter(pk=connection_id, is_active=True).first()
    # Bytes, not str: compare_digest refuses non-ASCII str, and the header is whatever a caller sent.
    given = secret.encode("utf-8", "surrogatepass")
    if connection is None or not secret or not hmac.compare_digest(given, connection.webhook_secret().encode()):
        raise PermissionDenied("Unknown connection or wrong webhook secret.")
    Connection.objects.filter(pk=connection.pk).update(last_webhook_at=Now())
    if action not in ANNOTATION_ACTIONS:
        return False
    from ..tasks import pull_connection

    transaction.on_commit(lambda: pull_connection.delay(connection.pk, "webhook"))
    return True
