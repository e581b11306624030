"""Markdown for live views: an incremental block splitter and a Markdown → HTML renderer.

:class:`BlockSplitter` cuts a growing Markdown text into blocks at blank lines outside code
fences, and cuts a block that grows past ``max_block`` characters inside a code fence at a line
end (the piece is closed, the rest reopened with the same fence line). A block, once finished,
never changes, so a live view sends it once and only re-sends the growing last block, which
stays short. :func:`to_html` renders Markdown with code blocks highlighted by Pygments (inline
styles: no stylesheet needed in a widget). Both libraries are imported on first use.

Model output is untrusted (docs/security.md). :func:`to_html` is the one renderer of Markdown
that reaches a frontend, and :func:`sanitize_html` the one way model HTML does: raw HTML in the
Markdown is escaped, links keep only ``http``, ``https``, ``mailto`` and relative targets,
remote images become links unless :func:`set_remote_images` allows them, and the result passes
nh3's allowlist (no scripts, event handlers, ``javascript:`` URLs, iframes, forms, or styles
beyond colours, weights and alignment). The HTML is what is published: raw ``text/markdown``
would be rendered by JupyterLab, nbconvert or another viewer with its HTML passed through.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, NamedTuple, cast

__all__ = [
    "Block",
    "BlockSplitter",
    "close_open_fence",
    "remote_images",
    "sanitize_html",
    "set_remote_images",
    "text_to_html",
    "to_html",
]

ENV_REMOTE_IMAGES: Final = "KOINE_REMOTE_IMAGES"

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


class Block(NamedTuple):
    """A finished piece of the text. ``text`` is the slice of the answer; ``opener`` the fence
    line it continues inside (after a cut) and ``closer`` the fence it ends inside (before a
    cut), so :attr:`markdown` renders on its own."""

    text: str
    opener: str | None = None
    closer: str | None = None

    @property
    def markdown(self) -> str:
        head = f"{self.opener}\n" if self.opener is not None else ""
        return head + close_open_fence(self.text, self.closer)


class BlockSplitter:
    """Splits appended text into finished blocks and the growing tail.

    ``feed(delta)`` returns the blocks finished by this delta; ``"".join(b.text for b in all
    finished) + tail == text`` always holds. A block ends at a blank line that is not inside a
    fenced code block; with ``max_block``, a fenced block that grows past that many characters
    is also cut after its last complete line.
    """

    __slots__ = (
        "_fence",
        "_fence_line",
        "_line_start",
        "_max_block",
        "_opener",
        "_pending_blank",
        "_tail_start",
        "_text",
    )

    def __init__(self, max_block: int | None = None) -> None:
        self._text = ""
        self._tail_start = 0  # where the unfinished block begins
        self._line_start = 0  # where the first not yet examined line begins
        self._fence: str | None = None  # the open fence marker (``` or ~~~ run), if any
        self._fence_line = ""  # the line that opened it (marker and info string)
        self._opener: str | None = None  # the fence line the tail continues inside (cut)
        self._pending_blank = False
        self._max_block = max_block

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

    @property
    def tail_markdown(self) -> str:
        """The tail as Markdown that renders on its own (its fence reopened and closed)."""
        return Block(self.tail, self._opener, self._fence).markdown

    def _finish(self, end: int, closer: str | None) -> Block:
        block = Block(self._text[self._tail_start : end], self._opener, closer)
        self._tail_start = end
        self._opener = self._fence_line if closer is not None else None
        return block

    def feed(self, delta: str) -> list[Block]:
        self._text += delta
        text = self._text
        finished: list[Block] = []
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
                    finished.append(self._finish(self._line_start, None))
                    self._pending_blank = False
                m = _FENCE.match(line)
                if m is not None and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                    self._fence = m.group(1)
                    self._fence_line = line.strip()
            self._line_start = next_start
            if (
                self._max_block is not None
                and self._fence is not None
                and self._line_start - self._tail_start >= self._max_block
            ):
                # A long code block: what is complete goes out now, closed; the rest reopens.
                finished.append(self._finish(self._line_start, self._fence))
        return finished


def close_open_fence(markdown: str, fence: str | None) -> str:
    """``markdown`` with its open code fence closed (so text after it is not swallowed)."""
    if fence is None:
        return markdown
    sep = "" if markdown.endswith("\n") else "\n"
    return f"{markdown}{sep}{fence}\n"


# -- the renderer of untrusted text ------------------------------------------------------------

_remote_images: bool | None = None  # None: as KOINE_REMOTE_IMAGES says


def remote_images() -> bool:
    """Whether answers may load remote images (off by default: an image URL can carry data
    out of the notebook the moment it is shown). ``KOINE_REMOTE_IMAGES=1`` or
    :func:`set_remote_images` turns it on."""
    if _remote_images is not None:
        return _remote_images
    return os.environ.get(ENV_REMOTE_IMAGES, "").strip().lower() in {"1", "true", "yes", "on"}


def set_remote_images(on: bool | None) -> None:
    """Allow (``True``) or refuse (``False``) remote images in rendered answers for this
    process; ``None`` goes back to the environment variable."""
    global _remote_images
    _remote_images = on


_SAFE_SCHEMES: Final = frozenset({"http", "https", "mailto"})
_SCHEME: Final = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_CONTROL: Final = re.compile(r"[\x00-\x20\x7f]+")


def safe_url(url: str) -> bool:
    """``http``, ``https``, ``mailto`` or a relative target (no scheme at all)."""
    m = _SCHEME.match(_CONTROL.sub("", url))
    return m is None or m.group(1).lower() in _SAFE_SCHEMES


# What rendered Markdown and model HTML may keep: structure, text formatting, tables, links.
_TAGS: Final = frozenset(
    [
        "a",
        "abbr",
        "b",
        "blockquote",
        "br",
        "caption",
        "code",
        "col",
        "colgroup",
        "dd",
        "del",
        "details",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "ins",
        "kbd",
        "li",
        "mark",
        "ol",
        "p",
        "pre",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "tt",
        "u",
        "ul",
        "var",
    ]
)
_ATTRIBUTES: Final = {
    "*": {"style", "title", "class"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "ol": {"start"},
    "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align", "scope"},
}
# Colours, weights, spacing inside the box: nothing that positions, sizes or overlays.
_STYLES: Final = frozenset(
    {
        "color",
        "background-color",
        "font-weight",
        "font-style",
        "text-align",
        "text-decoration",
        "white-space",
        "padding",
        "overflow-x",
        "line-height",
        "opacity",
        "font-size",
    }
)


def sanitize_html(markup: str) -> str:
    """``markup`` through nh3's allowlist: structure, formatting, tables and safe links stay;
    scripts, event handlers, ``javascript:``/``data:`` URLs, iframes, forms, embedded objects
    and positioning styles go (their text is kept, escaped). Images stay only when
    :func:`remote_images` allows them."""
    import nh3

    tags: set[str] = set(_TAGS)
    if remote_images():
        tags.add("img")
    attributes = {k: set(v) for k, v in _ATTRIBUTES.items() if k in tags or k == "*"}
    return nh3.clean(
        markup,
        tags=tags,
        clean_content_tags={"script", "style"},
        attributes=attributes,
        url_schemes=set(_SAFE_SCHEMES),
        filter_style_properties=set(_STYLES),
        link_rel="noopener noreferrer nofollow",
    )


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


def _image_as_link(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env) or src
    if remote_images():
        return self.image(tokens, idx, options, env)
    return f'<a href="{html.escape(src)}">{html.escape("🖼 " + alt)}</a>'


@lru_cache(maxsize=1)
def _renderer() -> Callable[[str], str]:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.validateLink = safe_url  # pyright: ignore[reportAttributeAccessIssue]
    md.add_render_rule("image", _image_as_link)
    return md.render


def to_html(markdown: str) -> str:
    """Render untrusted Markdown to safe HTML: headings, lists, tables, code (highlighted),
    emphasis and links stay; raw HTML is escaped; links keep only http/https/mailto/relative
    targets; remote images are links unless allowed (:func:`set_remote_images`); the result
    passes :func:`sanitize_html`."""
    return sanitize_html(_renderer()(markdown))


def text_to_html(text: str) -> str:
    """Plain text as preformatted HTML."""
    return f'<pre style="white-space:pre-wrap;margin:0">{html.escape(text)}</pre>'
