"""Template tags of the feedback pages: an item's comment thread, for any page that shows the item."""

from __future__ import annotations

from django import template

from ..content import hidden_characters
from ..models import ItemComment
from ..services.comments import MAX_BODY, item_comments

register = template.Library()


@register.simple_tag
def item_thread(item_id: int) -> list[ItemComment]:
    """The item's comments, oldest first (one query): `{% item_thread item.pk as comments %}`."""
    return item_comments(item_id=item_id)


@register.simple_tag
def comment_max_length() -> int:
    return MAX_BODY


@register.filter
def hidden_character_names(text: str) -> list[str]:
    """The invisible formatting characters in `text` (a right-to-left override, say), by name."""
    return hidden_characters(text or "")
