"""The only code that talks to Label Studio: label-studio-sdk calls with errors made plain.

Every failure becomes a `LabelStudioError` subclass whose message says what happened and what
to do, and whose `status` is what the connection page shows. `Unavailable` is the only
transient one: Celery retries it with backoff; the others wait for a person to act.
Never called inside a database transaction.

Messages say what failed (the HTTP status, "could not connect", "address not allowed") and never
quote what the server answered: the page that shows them is no window onto whatever the URL
points at. Every connection goes through the address policy of `addresses.py`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx
import pydantic
from dateutil.parser import isoparse
from django.conf import settings

from reviewapp.outbound import Unresolvable, UnsafeTarget

from .addresses import CheckedTransport, check_base_url
from .crypto import SecretUnreadable
from .models import Connection, ConnectionStatus

if TYPE_CHECKING:
    from label_studio_sdk.core.api_error import ApiError

# label-studio-sdk loads pandas (~2 s, ~100 MB): it is imported by the first Client made, not by
# every web process that imports the Label Studio pages.

PAGE_SIZE = 100
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED")
WEBHOOK_SECRET_HEADER = "X-Reviewapp-Webhook-Secret"  # noqa: S105 (a header name)


class LabelStudioError(Exception):
    status: str = ConnectionStatus.ERROR
    transient = False


class Unavailable(LabelStudioError):
    status = ConnectionStatus.UNREACHABLE
    transient = True


class Unauthorized(LabelStudioError):
    status = ConnectionStatus.UNAUTHORIZED


class ProjectMissing(LabelStudioError):
    status = ConnectionStatus.PROJECT_MISSING


class ConfigMismatch(LabelStudioError):
    status = ConnectionStatus.CONFIG_MISMATCH


class Refused(LabelStudioError):
    """Label Studio understood the request and said no (validation), or answered nonsense."""


class AddressNotAllowed(LabelStudioError):
    """The connection's URL is one reviewapp may not call (see addresses.py); nothing was sent."""


def ls_datetime(value: Any) -> datetime:
    """Label Studio timestamps arrive as datetimes or ISO strings depending on the endpoint."""
    return value if isinstance(value, datetime) else isoparse(str(value))


def ls_filter_datetime(value: datetime) -> str:
    """The one format Label Studio's Data Manager filters accept."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Client:
    """A Label Studio server as a connection sees it. Methods return plain dicts and ints."""

    def __init__(self, connection: Connection) -> None:
        self.base_url = connection.api_url
        try:  # the URL first: a refused address is reported even when the token is fine
            check_base_url(self.base_url, resolve=False)  # addresses: checked at each connection
        except UnsafeTarget as error:
            raise _not_allowed(self.base_url, error) from None
        try:
            token = connection.api_token()
        except SecretUnreadable as error:
            raise Unauthorized(str(error)) from None
        if not token:
            raise Unauthorized(f"No API token: environment variable {connection.token_env_var!r} is empty or unset.")
        from label_studio_sdk import LabelStudio

        timeout = settings.LABEL_STUDIO_TIMEOUT_SECONDS
        self._sdk = LabelStudio(
            base_url=self.base_url,
            api_key=token,
            timeout=timeout,
            max_retries=0,  # Celery retries with backoff; retrying here too would multiply waits
            # Redirects are not followed: a token is never replayed to wherever a redirect points.
            httpx_client=httpx.Client(
                transport=CheckedTransport(), timeout=timeout, follow_redirects=False, trust_env=False
            ),
        )

    def _call(self, what: str, fn: Any, *args: Any, project_id: int | None = None, **kwargs: Any) -> Any:
        from label_studio_sdk.core.api_error import ApiError  # loaded already: __init__ made the SDK client

        try:
            return fn(*args, **kwargs)
        except Unresolvable:  # DNS may be back by the next attempt
            raise Unavailable(f"Label Studio at {self.base_url} is unreachable (host not found); will retry.") from None
        except UnsafeTarget as error:  # raised by CheckedTransport before connecting
            raise _not_allowed(self.base_url, error) from None
        except (httpx.TransportError, ConnectionError) as error:
            reason = _reason(error)
            raise Unavailable(f"Label Studio at {self.base_url} is unreachable ({reason}); will retry.") from None
        except ApiError as error:
            raise self._translate(what, error, project_id) from None
        except pydantic.ValidationError:  # its message would quote the answer
            raise self._unreadable(what) from None

    def _unreadable(self, what: str) -> Refused:
        return Refused(
            f"Label Studio at {self.base_url} gave an answer reviewapp cannot read while trying to {what}: "
            "is the URL a Label Studio server?"
        )

    def _translate(self, what: str, error: ApiError, project_id: int | None) -> LabelStudioError:
        code = error.status_code or 0
        if 200 <= code < 300:  # the SDK could not parse a successful answer
            return self._unreadable(what)
        if code in (401, 403):
            return Unauthorized(
                f"Label Studio at {self.base_url} refused the API token ({code}) while trying to {what}: "
                "check the token (and that legacy tokens are enabled on the server)."
            )
        if code == 404 and project_id is not None:
            return ProjectMissing(
                f"Label Studio project {project_id} no longer exists on {self.base_url} (deleted?). "
                "Re-create it from the connection page; nothing pulled so far is lost."
            )
        if code >= 500 or code in (0, 429, 502, 503, 504):
            return Unavailable(f"Label Studio at {self.base_url} failed to {what} (HTTP {code}); will retry.")
        if 300 <= code < 400:
            return Refused(f"Label Studio at {self.base_url} redirected ({code}): use its final address as the URL.")
        # The body is not quoted: the URL is typed by a person, and the page must not show them
        # what an arbitrary server answered. Label Studio's own log has its validation detail.
        return Refused(f"Label Studio at {self.base_url} refused to {what} (HTTP {code}).")

    # ------------------------------------------------------------------ server and users

    def whoami(self) -> dict[str, Any]:
        user = self._call("identify the token's user", self._sdk.users.whoami)
        return {"id": user.id, "email": user.email or ""}

    def user(self, user_id: int) -> dict[str, Any]:
        """A user's email, or an empty one when the token may not read users."""
        try:
            user = self._call("read a user", self._sdk.users.get, user_id)
        except (Refused, Unauthorized):
            return {"id": user_id, "email": ""}
        return {"id": user_id, "email": user.email or ""}

    # ------------------------------------------------------------------ projects

    def project(self, project_id: int) -> dict[str, Any]:
        project = self._call("read the project", self._sdk.projects.get, project_id, project_id=project_id)
        return {
            "id": project.id,
            "label_config": project.label_config or "",
            "annotations": getattr(project, "total_annotations_number", None) or 0,
        }

    def project_create(self, *, title: str, label_config: str, instructions: str, maximum_annotations: int) -> int:
        project = self._call(
            "create a project",
            self._sdk.projects.create,
            title=title[:50],
            label_config=label_config,
            expert_instruction=instructions,
            show_instruction=bool(instructions),
            maximum_annotations=maximum_annotations,
            show_collab_predictions=True,
        )
        return int(project.id)

    def project_update(self, project_id: int, *, title: str, label_config: str, instructions: str) -> None:
        self._call(
            "update the project's labeling config",
            self._sdk.projects.update,
            project_id,
            project_id=project_id,
            title=title[:50],
            label_config=label_config,
            expert_instruction=instructions,
            show_instruction=bool(instructions),
        )

    # ------------------------------------------------------------------ tasks

    def tasks_import(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Create tasks (with predictions); returns their ids in the order given."""
        response = self._call(
            "import tasks",
            self._sdk.projects.import_tasks,
            project_id,
            project_id=project_id,
            request=list(tasks),
            return_task_ids=True,
        )
        ids = [int(task_id) for task_id in (response.task_ids or [])]
        if len(ids) != len(tasks):
            raise Refused(f"Label Studio created {len(ids)} tasks for {len(tasks)} sent; none recorded as pushed.")
        return ids

    def tasks_by_marker(self, project_id: int, key: str) -> dict[int, int]:
        """{data[key]: task id} over the whole project; used only to recover an interrupted push."""
        found: dict[int, int] = {}
        for task in self._tasks(project_id, fields="task_only"):
            marker = (task.get("data") or {}).get(key)
            if isinstance(marker, int):
                found[marker] = int(task["id"])
        return found

    def tasks_changed_since(self, project_id: int, since: datetime | None) -> Iterator[dict[str, Any]]:
        """Tasks (with annotations) updated after `since`, oldest first. Label Studio moves a
        task's updated_at whenever one of its annotations is created or edited."""
        query = {"ordering": ["tasks:updated_at"]}
        if since is not None:
            value = ls_filter_datetime(since)
            item = {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime", "value": value}
            query["filters"] = {"conjunction": "and", "items": [item]}  # type: ignore[assignment]
        return self._tasks(project_id, fields="all", query=json.dumps(query))

    def _tasks(self, project_id: int, **params: Any) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            raw = self._call(
                "list tasks",
                self._sdk.tasks.with_raw_response.list,
                project=project_id,
                page=page,
                page_size=PAGE_SIZE,
                project_id=project_id,
                **params,
            )
            body = raw.response  # the parsed page: .tasks and .total
            yield from (task.model_dump(mode="json") for task in body.tasks or [])
            if page * PAGE_SIZE >= (body.total or 0):
                return
            page += 1

    # ------------------------------------------------------------------ webhooks

    def webhook_ensure(self, project_id: int, webhook_id: int | None, *, url: str, secret: str) -> int:
        """Create or repair the project's webhook for annotation events; returns its id."""
        fields: dict[str, Any] = {
            "url": url,
            "project": project_id,
            "actions": list(ANNOTATION_ACTIONS),
            "headers": {WEBHOOK_SECRET_HEADER: secret},
            "send_payload": True,
            "send_for_all_actions": False,
            "is_active": True,
        }
        if webhook_id is not None:
            try:
                hook = self._call("update the webhook", self._sdk.webhooks.update, webhook_id, **fields)
                return int(hook.id)
            except Refused:
                pass  # deleted in Label Studio: create it again
        hook = self._call("create the webhook", self._sdk.webhooks.create, **fields)
        return int(hook.id)


def _not_allowed(base_url: str, error: UnsafeTarget) -> AddressNotAllowed:
    return AddressNotAllowed(f"Label Studio at {base_url}: address not allowed. {' '.join(error.messages)}")


def _reason(error: Exception) -> str:
    """What went wrong on the way, in our words: a transport error's text may carry server bytes."""
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.ConnectError | ConnectionError):
        return "could not connect"
    return f"connection failed: {type(error).__name__}"
