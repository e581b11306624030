"""Untrusted text → HTML that carries no active content: the one way model and gateway text
reaches a notebook as something richer than ``text/plain``.

Model answers (a prompt-injected model writes what the attacker wants), answers replayed from a
ledger someone shipped, and gateway fields all go through here:

:func:`markdown_html`
    Markdown rendered by markdown-it-py with raw HTML *escaped* (``<img onerror=…>`` shows as
    text), headings, lists, tables, code (highlighted by Pygments, inline styles), emphasis and
    links kept. Links only to ``http``, ``https``, ``mailto`` and relative targets (anything
    else stays text). Remote images are shown as links unless :func:`remote_images` is on: an
    image loads by itself, and its URL can carry what the model saw to a stranger's server.
:func:`clean_html`
    the final allowlist pass (nh3) over every ``text/html`` we publish, our own markup included:
    no scripts, event handlers, ``javascript:`` URLs, iframes, forms, or styles that leave the
    cell (only typographic CSS properties survive). ``--format html`` answers get only this.
:func:`text_html`
    plain text, escaped, preformatted.

What we publish is this sanitized ``text/html`` (never the model's ``text/markdown``: the Markdown
renderers of JupyterLab and nbconvert pass raw HTML through), so a saved, reopened or exported
notebook stays inert. ``text/plain`` is left as it is. See docs/security.md.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, cast
from urllib.parse import urlsplit

__all__ = [
    "ENV_REMOTE_IMAGES",
    "LINK_SCHEMES",
    "clean_html",
    "link_allowed",
    "markdown_html",
    "remote_images",
    "set_remote_images",
    "text_html",
]

ENV_REMOTE_IMAGES: Final = "KOINE_REMOTE_IMAGES"
LINK_SCHEMES: Final = frozenset({"http", "https", "mailto"})

_TAGS: Final = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "del", "details", "div", "em", "h1",
        "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s",
        "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
        "thead", "tr", "ul",
    }
)  # fmt: skip
_ATTRIBUTES: Final = {
    "*": {"style", "title"},
    "a": {"href"},
    "img": {"src", "alt"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "table": {"border"},
}
# Typographic CSS only: nothing that positions, transforms or overlays (a "style that escapes
# the cell", such as position:fixed over the whole page, is dropped property by property).
_STYLES: Final = frozenset(
    {
        "align-items", "background", "background-color", "border", "border-bottom",
        "border-collapse", "border-left", "border-radius", "color", "display", "flex",
        "font-family", "font-size", "font-style", "font-weight", "gap", "line-height", "margin",
        "margin-bottom", "margin-left", "margin-top", "min-width", "opacity", "overflow-x",
        "padding", "padding-left", "padding-right", "text-align", "text-decoration",
        "vertical-align", "white-space",
    }
)  # fmt: skip

_remote_images: bool | None = None


def set_remote_images(value: bool | None) -> None:
    """Load remote images in rendered answers (``None``: as ``KOINE_REMOTE_IMAGES`` says).
    ``%config KoineMagics.remote_images = True`` calls this."""
    global _remote_images
    _remote_images = value


def remote_images() -> bool:
    """Whether remote images are loaded: :func:`set_remote_images`, else the environment
    variable ``KOINE_REMOTE_IMAGES`` (``1``/``true``/``yes``), else off."""
    if _remote_images is not None:
        return _remote_images
    return os.environ.get(ENV_REMOTE_IMAGES, "").strip().lower() in {"1", "true", "yes", "on"}


def _scheme_and_host(url: str) -> tuple[str, str]:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "invalid", ""
    return parts.scheme.lower(), parts.netloc


def link_allowed(url: str) -> bool:
    """An ``http``, ``https`` or ``mailto`` URL, or a relative one (no scheme)."""
    scheme, _ = _scheme_and_host(url)
    return scheme in LINK_SCHEMES or scheme == ""


def _is_remote(url: str) -> bool:
    scheme, host = _scheme_and_host(url)
    return bool(host) or scheme not in ("",)


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


def _image(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    alt = self.renderInlineAsText(token.children or [], options, env)
    if _is_remote(src) and not remote_images():
        # Not loaded: a link the reader may follow, saying it is an image.
        label = html.escape(alt or src)
        return f'<a href="{html.escape(src)}" title="image (not loaded)">🖼 {label}</a>'
    return cast(str, self.image(tokens, idx, options, env))


@lru_cache(maxsize=1)
def _renderer() -> Callable[[str], str]:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.validateLink = link_allowed  # pyright: ignore[reportAttributeAccessIssue]
    md.add_render_rule("image", _image)
    return md.render


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    if attribute in ("href", "src") and not link_allowed(value):
        return None
    if element == "img" and attribute == "src" and _is_remote(value) and not remote_images():
        return None
    return value


@lru_cache(maxsize=1)
def _cleaner() -> Callable[[str], str]:
    import nh3

    cleaner = nh3.Cleaner(
        tags=set(_TAGS),
        clean_content_tags={"script", "style"},
        attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
        attribute_filter=_attribute_filter,
        url_schemes=set(LINK_SCHEMES),
        filter_style_properties=set(_STYLES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return cleaner.clean


def clean_html(fragment: str) -> str:
    """``fragment`` through the allowlist (see the module docstring): what is left is inert."""
    if not fragment:
        return ""
    return _cleaner()(fragment)


def markdown_html(markdown: str) -> str:
    """Untrusted Markdown as inert HTML: raw HTML escaped, links and images checked, and the
    allowlist pass over the result."""
    if not markdown:
        return ""
    return clean_html(_renderer()(markdown))


def text_html(text: str) -> str:
    """Plain text as preformatted HTML."""
    return f'<pre style="white-space:pre-wrap;margin:0">{html.escape(text)}</pre>'
