from django import template

from ..content import hidden_characters

register = template.Library()


@register.filter(name="hidden_chars")
def hidden_chars(text: str) -> list[str]:
    """Names of invisible formatting characters in the text (RTL overrides, zero-width joiners)."""
    return hidden_characters(text or "")
