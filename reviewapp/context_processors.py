from __future__ import annotations

from django.http import HttpRequest

from .access import is_lead


def roles(request: HttpRequest) -> dict[str, bool]:
    """`is_lead` for navigation; views still check permissions themselves."""
    return {"is_lead": is_lead(request.user) if hasattr(request, "user") else False}
