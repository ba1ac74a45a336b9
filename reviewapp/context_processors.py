from __future__ import annotations

from django.http import HttpRequest

from .access import is_admin, is_lead
from .theme import THEMES, theme_of

# The first path segment of each main navigation link, for aria-current on the page's own link.
NAV_SECTIONS = {
    section: section
    for section in ("lead", "items", "models", "ops", "labelstudio", "api", "tokens", "outcomes", "notifications")
}


def roles(request: HttpRequest) -> dict[str, bool]:
    """`is_lead` and `is_admin` for navigation; views still check permissions themselves."""
    if not hasattr(request, "user"):
        return {"is_lead": False, "is_admin": False}
    return {"is_lead": is_lead(request.user), "is_admin": is_admin(request.user)}


def display(request: HttpRequest) -> dict[str, object]:
    """The chosen colour theme and the navigation section of the page, for base.html."""
    parts = request.path.strip("/").split("/")
    section = NAV_SECTIONS.get(parts[0], "") if parts[0] else "home"
    if section == "lead" and len(parts) > 1:
        section = {
            "datasets": "datasets",
            "quality": "quality",
            "appeals": "appeals",
            "llm": "llm",
            "drafts": "policies",
            "policies": "policies",
            "queues": "queues",
            "routing": "queues",
            "reviewers": "reviewers",
            "prelabels": "llm",
        }.get(parts[1], "adjudications")
    return {"theme": theme_of(request), "themes": THEMES, "nav_section": section}
