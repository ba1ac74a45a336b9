"""API errors: one JSON shape, the HTTP statuses DRF lacks, and the one place service refusals
become statuses.

Every error body is `{"detail": "<one readable sentence>"}`; validation errors add `errors`, the
field-by-field messages. The OpenAPI schema documents that shape for every status an operation
can answer with (`document_error_responses`), so clients and the schemathesis tests agree.

Views do not catch service exceptions: `exception_handler` maps the `reviewapp.errors` family
(`Conflict` → 409, `Invalid` → 400) and Django's `ValidationError` (→ 400, its messages joined).
An API whose refusal carries more than a sentence (the round already running, say) declares its
body once with `@error_body(ExceptionClass)` beside its serializers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from ..context import current_request_id
from ..errors import Conflict, Invalid

API_PREFIX = "/api/"
# Messages quoted in `detail` when a validation error names several fields.
SUMMARY_MESSAGES = 3

E = TypeVar("E", bound=Exception)
# Exception class → the function that renders its JSON body; filled by `@error_body`.
ERROR_BODIES: dict[type[Exception], Callable[[Any], Any]] = {}


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "payload_too_large"


def error_body(exception_class: type[E]) -> Callable[[Callable[[E], Any]], Callable[[E], Any]]:
    """Register how the API renders `exception_class` (and its subclasses); the status still
    comes from its family. For refusals whose body is more than `{"detail", **extra}`."""

    def register(render: Callable[[E], Any]) -> Callable[[E], Any]:
        ERROR_BODIES[exception_class] = render
        return render

    return register


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(str(exc) or None)
    refusal = refusal_response(exc)
    if refusal is not None:
        set_rollback()  # as DRF does for the errors it handles
        return refusal
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = validation_error_body(response.data)
    return response


def refusal_response(exc: Exception) -> Response | None:
    """409 for a `Conflict`, 400 for an `Invalid` or a Django `ValidationError`; None otherwise.

    The body is the one registered for the class with `@error_body`, else `{"detail", **extra}`,
    else (a ValidationError) `{"detail": <its messages joined>}`.
    """
    body: Any
    if isinstance(exc, Conflict):
        code, body = status.HTTP_409_CONFLICT, exc.body()
    elif isinstance(exc, Invalid):
        code, body = status.HTTP_400_BAD_REQUEST, exc.body()
    elif isinstance(exc, DjangoValidationError):
        code, body = status.HTTP_400_BAD_REQUEST, {"detail": " ".join(exc.messages)}
    else:
        return None
    render = next((ERROR_BODIES[cls] for cls in type(exc).__mro__ if cls in ERROR_BODIES), None)
    return Response(body if render is None else render(exc), status=code)


def validation_error_body(data: Any) -> dict[str, Any]:
    """DRF's field → messages structure as `{"detail", "errors"}`; a lone `detail` stays as it is."""
    if isinstance(data, dict) and set(data) == {"detail"} and isinstance(data["detail"], str):
        return data
    messages = list(_flatten(data))
    shown = "; ".join(f"{field}: {message}" if field else message for field, message in messages[:SUMMARY_MESSAGES])
    more = f" (and {len(messages) - SUMMARY_MESSAGES} more)" if len(messages) > SUMMARY_MESSAGES else ""
    body: dict[str, Any] = {"detail": f"Invalid input: {shown}{more}." if shown else "Invalid input."}
    if isinstance(data, dict):
        body["errors"] = data
    return body


def _flatten(data: Any, path: str = "") -> Any:
    if isinstance(data, dict):
        for key, value in data.items():
            name = "" if key in ("non_field_errors", "detail") else str(key)
            yield from _flatten(value, f"{path}.{name}" if path and name else path or name)
    elif isinstance(data, list):
        for value in data:
            yield from _flatten(value, path)
    else:
        yield path, str(data).rstrip(".")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """403 from a page view's PermissionDenied: JSON under /api/, templates/403.html elsewhere.

    DRF views answer their own 403 in JSON before this runs; this covers plain Django views.
    """
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return defaults.permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for URLs that match no route: JSON under /api/, the usual page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "No such endpoint or object."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """500 (DEBUG off): under /api/ the documented JSON error, with the request id to quote in a
    report; the usual page elsewhere. The traceback is logged by Django, never sent."""
    if request.path.startswith(API_PREFIX):
        request_id = current_request_id.get()
        detail = "Internal server error."
        if request_id:
            detail += f" Quote request id {request_id} when reporting it."
        return JsonResponse({"detail": detail}, status=500)
    return defaults.server_error(request)


# Statuses every API operation may answer with, besides the ones its view documents.
COMMON_ERRORS = {
    "401": "No valid token or session.",
    "403": "The token lacks the scope, or the user the role, this operation needs.",
    "429": "Too many requests for this token (REVIEWAPP_API_RATE); retry after `Retry-After` seconds.",
}
INVALID_INPUT = "Invalid input: malformed JSON, a value that fails validation, or a NUL character in the URL."
NOT_FOUND = "No such object (or not one you may see), or an invalid pagination cursor."


def document_error_responses(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the error statuses views do not declare themselves.

    400 where the operation takes a body or parameters, 404 where it addresses an object by
    path or pages with a cursor, and 401/403/429 everywhere; all with the `Error` body.
    """
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            extra = dict(COMMON_ERRORS)
            if "requestBody" in operation or parameters:
                extra["400"] = INVALID_INPUT
            if any(p["in"] == "path" or p["name"] == "cursor" for p in parameters):
                extra["404"] = NOT_FOUND
            responses = operation.setdefault("responses", {})
            for code, description in extra.items():
                responses.setdefault(code, {"description": description, **error})
    return result
