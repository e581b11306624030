"""Markdown for live views: an incremental block splitter and a Markdown → HTML renderer.

:class:`BlockSplitter` cuts a growing Markdown text into blocks at blank lines outside code
fences. A block, once finished, never changes, so a widget view renders it once and only
re-sends the growing last block. :func:`to_html` renders Markdown with code blocks highlighted
by Pygments (inline styles: no stylesheet needed in a widget); raw HTML in the model's answer is
escaped, never interpreted. Both libraries are imported on first use.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast

__all__ = ["BlockSplitter", "close_open_fence", "text_to_html", "to_html"]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


class BlockSplitter:
    """Splits appended text into finished blocks and the growing tail.

    ``feed(delta)`` returns the blocks finished by this delta (each ends with its blank line
    separator, so ``"".join(all finished) + tail == text``). A block ends at a blank line that is
    not inside a fenced code block.
    """

    __slots__ = ("_fence", "_line_start", "_pending_blank", "_tail_start", "_text")

    def __init__(self) -> None:
        self._text = ""
        self._tail_start = 0  # where the unfinished block begins
        self._line_start = 0  # where the first not yet examined line begins
        self._fence: str | None = None  # the open fence marker (``` or ~~~ run), if any
        self._pending_blank = False

    @property
    def text(self) -> str:
        return self._text

    @property
    def tail(self) -> str:
        """The unfinished last block."""
        return self._text[self._tail_start :]

    @property
    def in_fence(self) -> str | None:
        """The marker of the code fence the text currently ends inside, or ``None``."""
        return self._fence

    def feed(self, delta: str) -> list[str]:
        self._text += delta
        text = self._text
        finished: list[str] = []
        while True:
            end = text.find("\n", self._line_start)
            if end < 0:
                break
            line = text[self._line_start : end]
            next_start = end + 1
            if self._fence is not None:
                m = _FENCE.match(line)
                if (
                    m is not None
                    and m.group(1)[0] == self._fence[0]
                    and len(m.group(1)) >= len(self._fence)
                    and not m.group(2).strip()
                ):
                    self._fence = None
            elif not line.strip():
                if self._tail_start < self._line_start:
                    self._pending_blank = True
            else:
                if self._pending_blank:
                    # A non-blank line after blank ones: the block before them is finished.
                    finished.append(text[self._tail_start : self._line_start])
                    self._tail_start = self._line_start
                    self._pending_blank = False
                m = _FENCE.match(line)
                if m is not None and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                    self._fence = m.group(1)
            self._line_start = next_start
        return finished


def close_open_fence(markdown: str, fence: str | None) -> str:
    """``markdown`` with its open code fence closed (so text after it is not swallowed)."""
    if fence is None:
        return markdown
    sep = "" if markdown.endswith("\n") else "\n"
    return f"{markdown}{sep}{fence}\n"


def _highlight(code: str, lang: str, _attrs: Any) -> str:
    from pygments import highlight, lexers
    from pygments.formatters import HtmlFormatter
    from pygments.util import ClassNotFound

    if not lang:
        return ""
    try:
        lexer = cast(Any, lexers).get_lexer_by_name(lang.split()[0])
    except ClassNotFound:
        return ""
    body: str = highlight(code, lexer, HtmlFormatter(nowrap=True, noclasses=True))
    return f'<pre style="padding:0.4em;overflow-x:auto"><code>{body}</code></pre>'


@lru_cache(maxsize=1)
def _renderer() -> Callable[[str], str]:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    return md.render


def to_html(markdown: str) -> str:
    """Render Markdown to HTML (code highlighted, raw HTML escaped)."""
    return _renderer()(markdown)


def text_to_html(text: str) -> str:
    """Plain text as preformatted HTML."""
    return f'<pre style="white-space:pre-wrap;margin:0">{html.escape(text)}</pre>'
