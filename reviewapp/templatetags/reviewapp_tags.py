from django import template

from ..content import Media, hidden_characters

register = template.Library()


@register.filter(name="hidden_chars")
def hidden_chars(text: str) -> list[str]:
    """Names of invisible formatting characters in the text (RTL overrides, zero-width joiners)."""
    return hidden_characters(text or "")


@register.filter(name="any_allowed")
def any_allowed(media: list[Media]) -> bool:
    """Whether any of the item's media may load (allowlisted host): only then is there anything to reveal."""
    return any(m.allowed for m in media)
