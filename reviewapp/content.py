"""Preparing hostile content for display: evidence highlighting, media allowlist, guideline Markdown.

Nothing here marks user text as safe: templates escape every piece. Only the guideline Markdown
is rendered to HTML, by markdown-it with raw HTML disabled and unsafe link schemes refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@dataclass(frozen=True)
class Segment:
    text: str
    highlight: bool
    label: str = ""


def highlight_spans(text: str, spans: list[dict[str, Any]]) -> list[Segment]:
    """Split `text` into plain and highlighted segments; overlapping spans are merged."""
    marks = sorted(
        (max(0, int(s["start"])), min(len(text), int(s["end"])), str(s.get("label", "")))
        for s in spans
        if isinstance(s, dict) and "start" in s and "end" in s
    )
    segments: list[Segment] = []
    cursor = 0
    for start, end, label in marks:
        if end <= cursor:
            continue
        start = max(start, cursor)
        if start > cursor:
            segments.append(Segment(text[cursor:start], False))
        segments.append(Segment(text[start:end], True, label))
        cursor = end
    if cursor < len(text) or not segments:
        segments.append(Segment(text[cursor:], False))
    return segments


@dataclass(frozen=True)
class Media:
    url: str
    kind: str  # image | video | audio
    allowed: bool


def media_for(urls: list[str], modality: str) -> list[Media]:
    """Each URL with whether it may be loaded and how to show it.

    Loadable: https on a host in MEDIA_ALLOWED_HOSTS, or a file of this app's own static host
    (`is_own_static`), which the Content-Security-Policy's 'self' already admits.
    """
    allowed_hosts = set(settings.MEDIA_ALLOWED_HOSTS)
    result = []
    for url in urls:
        parts = urlsplit(url)
        allowed = (parts.scheme == "https" and (parts.hostname or "") in allowed_hosts) or is_own_static(url)
        result.append(Media(url=url, kind=_media_kind(parts.path, modality), allowed=allowed))
    return result


# A plain path of letters, digits, '_', '-', '.' and '/': no scheme, host, query, percent-escape or
# backslash, any of which a browser could resolve to somewhere other than the static folder.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9_./-]+")


def is_own_static(url: str) -> bool:
    """Whether `url` is a path under this app's STATIC_URL (when that is a path on this origin).

    Such media is the app's own files, served like its CSS (the demo's images, sounds and video):
    never another host, never another path of the app ('..' and '.' segments are refused).
    """
    prefix = settings.STATIC_URL or ""
    if not prefix.startswith("/") or prefix.startswith("//") or not url.startswith(prefix):
        return False
    if not _PLAIN_PATH.fullmatch(url):
        return False
    return not any(segment in (".", "..") for segment in url.split("/"))


def _media_kind(path: str, modality: str) -> str:
    lowered = path.lower()
    if lowered.endswith((".mp4", ".webm", ".mov", ".m4v")) or modality == "video":
        return "video"
    if lowered.endswith((".mp3", ".wav", ".ogg", ".m4a", ".flac")) or modality == "audio":
        return "audio"
    return "image"


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_guideline(markdown: str) -> SafeString:
    """Guideline Markdown as HTML; raw HTML in the source is escaped, javascript: links refused."""
    return mark_safe(_markdown().render(markdown))  # noqa: S308 (markdown-it escapes; html disabled)


# Characters that change how text displays without being visible: used to hide or disguise
# abuse (reversed file names, split slurs). Reviewers are told they are there.
HIDDEN_CHARACTERS = {
    "\u200b": "zero-width space",
    "\u200c": "zero-width non-joiner",
    "\u200d": "zero-width joiner",
    "\u2060": "word joiner",
    "\ufeff": "zero-width no-break space",
    "\u202a": "left-to-right embedding",
    "\u202b": "right-to-left embedding",
    "\u202c": "pop directional formatting",
    "\u202d": "left-to-right override",
    "\u202e": "right-to-left override",
    "\u2066": "left-to-right isolate",
    "\u2067": "right-to-left isolate",
    "\u2068": "first strong isolate",
    "\u2069": "pop directional isolate",
}


def hidden_characters(text: str) -> list[str]:
    """Names of the invisible formatting characters in `text`, each once, in order of appearance."""
    found: dict[str, None] = {}
    for char in text:
        name = HIDDEN_CHARACTERS.get(char)
        if name:
            found.setdefault(name)
    return list(found)
