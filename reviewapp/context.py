"""Per-request context shared by logging and the audit trail (no model imports: logging loads it early)."""

from __future__ import annotations

import contextvars

# Set by RequestIdMiddleware for the duration of a request; Celery tasks leave it empty.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
