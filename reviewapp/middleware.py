"""Security headers that Django 5.2 does not send by itself; request ids; retryable outages."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import kombu.exceptions
import redis.exceptions
from django.conf import settings
from django.core.signals import request_finished
from django.db import InterfaceError, OperationalError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from .context import current_request_id

log = logging.getLogger(__name__)


def content_security_policy() -> str:
    """A strict CSP: scripts and styles from this origin only, media only from allowlisted hosts."""
    media_hosts = " ".join(f"https://{host}" for host in settings.MEDIA_ALLOWED_HOSTS)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: {media_hosts}".strip(),
            f"media-src 'self' {media_hosts}".strip(),
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.csp = content_security_policy()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", self.csp)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        return response


class RequestIdMiddleware:
    """Tag each request with an id (the caller's X-Request-ID when sane) for logs and audit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _is_safe_request_id(incoming) else uuid.uuid4().hex
        # Cleared by `request_finished` rather than here, so Django's own response logging
        # (which runs after the middleware chain) still carries the id.
        current_request_id.set(request_id)
        response = self.get_response(request)
        response.headers["X-Request-ID"] = request_id
        return response


@receiver(request_finished)
def _clear_request_id(**kwargs: object) -> None:
    current_request_id.set("")


def _is_safe_request_id(value: str) -> bool:
    return 0 < len(value) <= 64 and all(ch.isalnum() or ch in "-_." for ch in value)


# Errors that mean a backing service is unreachable or restarting, not that the request is wrong:
# PostgreSQL (connection refused or terminated by a restart or failover, serialization failures
# and deadlocks), the Celery broker (an enqueue after commit), and the Redis cache (rate limits).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_MESSAGE = (
    "The service is briefly unavailable (a database or queue server is restarting). "
    "Retry this request in a few seconds: repeating it is safe, it is never recorded twice."
)
UNAVAILABLE_HTML = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Please retry</title>"
    f"<h1>Please retry in a few seconds</h1><p>{UNAVAILABLE_MESSAGE}</p></html>"
)


class ServiceUnavailableMiddleware:
    """Answer 503 with Retry-After, not a 500, when a backing service is down mid-request.

    Retrying is safe: a failed request's transaction was rolled back, and when the failure came
    after commit (an enqueue), repeating it is a no-op, because every write endpoint is
    idempotent (decisions by their identity, annotations by submission_id, appeals by appeal_id).
    API callers get `{"detail", "retryable"}` JSON; pages get a short HTML explanation.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, UNAVAILABLE_ERRORS):
            return None
        kind = type(exception).__name__
        log.warning("%s %s: service unavailable, answered 503 (%s: %s)", request.method, request.path, kind, exception)
        if _wants_json(request):
            response: HttpResponse = JsonResponse({"detail": UNAVAILABLE_MESSAGE, "retryable": True}, status=503)
        else:
            response = HttpResponse(UNAVAILABLE_HTML, status=503, content_type="text/html; charset=utf-8")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        response.headers["Cache-Control"] = "no-store"
        return response


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


class RejectNulMiddleware:
    """Answer 400 to a request whose path or query string holds a NUL character.

    PostgreSQL cannot store or compare NUL in text, so such a value reaching a query fails deep
    inside the database driver as a server error; no legitimate client sends one. Refusing it here,
    before any view runs, covers every page and API parameter at once.
    """

    MESSAGE = "The URL contains a NUL character (%00), which is not allowed."

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or _query_has_nul(request):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": self.MESSAGE}, status=400)
            return HttpResponseBadRequest(self.MESSAGE, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class RequireContentLengthMiddleware:
    """Answer 411 to a request that sends a body without Content-Length (Transfer-Encoding: chunked).

    gunicorn passes such a body on, de-chunked, but Django reads a request body only up to its
    Content-Length, so without one the body looks empty and the view would answer a misleading
    "missing field" 400. Saying what is wrong is better than buffering bodies of unknown size
    here: every client library can send Content-Length.
    """

    MESSAGE = (
        "Chunked request bodies (Transfer-Encoding without Content-Length) are not supported; send Content-Length."
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("HTTP_TRANSFER_ENCODING") and not request.META.get("CONTENT_LENGTH"):
            if request.path.startswith("/api/"):
                return JsonResponse({"detail": self.MESSAGE}, status=411)
            return HttpResponse(self.MESSAGE, status=411, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


def _query_has_nul(request: HttpRequest) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists())
