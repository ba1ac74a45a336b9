"""The refusals a service can raise, by what the caller should do about them.

Services in every app raise these (or their own subclasses, which keep their names), and the one
API exception handler (`reviewapp.api.errors.exception_handler`) turns the family into the HTTP
status: `Conflict` → 409 (the state moved on: ask again, or look at what is there now), `Invalid`
→ 400 (the request itself is wrong: fix it). Django's `ValidationError` is the other 400. Pages
(htmx) catch the same classes and show the message. Plain Python, no Django: the ground floor
that every app's services may import.
"""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """A request a service will not carry out, with one readable sentence saying why.

    `detail` is that sentence (also `str(error)`); `extra` holds further keys the API body carries
    beside it, in order (e.g. the rejected rows).
    """

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON error body: `{"detail": ..., **extra}`."""
        return {"detail": self.detail, **self.extra}


class Conflict(Refused):
    """The request is well formed but the state it acts on forbids it now: someone else decided,
    the lease expired, a round is already running. HTTP 409."""


class Invalid(Refused):
    """The request cannot be carried out as sent (a missing reason, no valid row). HTTP 400."""
