"""Reading what our HTML outputs say: answers are published as rendered, sanitized HTML."""

from __future__ import annotations

import html
import re

_TAG = re.compile(r"<[^>]*>")
_STATUS = '<div style="font-size:85%'


def visible_text(markup: str) -> str:
    """The text a reader sees in ``markup`` (tags dropped, entities decoded, ends trimmed)."""
    return html.unescape(_TAG.sub("", markup)).strip()


def answer_text(markup: str) -> str:
    """The visible text of a live frame or answer without its status line."""
    return visible_text(markup.split(_STATUS)[0])


def status_text(markup: str) -> str:
    """The visible text of a live frame's status line ("" when it has none)."""
    parts = markup.split(_STATUS, 1)
    return visible_text(_STATUS + parts[1]) if len(parts) == 2 else ""
