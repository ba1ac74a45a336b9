from django import template

from ..content import Media

register = template.Library()


@register.filter(name="any_allowed")
def any_allowed(media: list[Media]) -> bool:
    """Whether any of the item's media may load (allowlisted host): only then is there anything to reveal."""
    return any(m.allowed for m in media)
