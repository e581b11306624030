"""The ``render`` benchmark's measurements: the one renderer of untrusted text
(``koine_jupyter.views._untrusted.markdown_html``: markdown-it with raw HTML escaped, link and
image checks, the nh3 allowlist pass) against the renderer the views used before it, kept here
as the reference (markdown-it with raw HTML escaped and Pygments, nothing else).

Both render the same answer twice over, as a live view does: block by block (each finished
block once, cut by the views' own ``BlockSplitter``) and then the whole answer (the cell's
result). Timed in this process, interleaved, best of each round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, cast


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
def _reference_renderer() -> Callable[[str], str]:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    return md.render


def reference_render(markdown: str) -> str:
    """The views' renderer before the untrusted-text renderer (the reference)."""
    return _reference_renderer()(markdown)


def _blocks(text: str) -> list[str]:
    from koine_jupyter.views._markdown import BlockSplitter
    from koine_jupyter.views.text import MAX_BLOCK

    splitter = BlockSplitter(max_block=MAX_BLOCK)
    blocks = [b.markdown for b in splitter.feed(text)]
    return [*blocks, splitter.tail_markdown]


def _once(render: Callable[[str], str], blocks: list[str], text: str) -> float:
    start = time.perf_counter()
    for block in blocks:
        render(block)
    render(text)
    return time.perf_counter() - start


def measure(text: str, rounds: int) -> dict[str, float]:
    """Seconds (best of ``rounds``) to render ``text`` block by block and whole, per renderer."""
    from koine_jupyter.views._untrusted import markdown_html

    renderers = {"reference": reference_render, "ours": markdown_html}
    blocks = _blocks(text)
    for render in renderers.values():  # warm: imports, lexers, the sanitizer's tables
        _once(render, blocks[:20], blocks[0])
    best: dict[str, float] = {}
    for r in range(rounds):
        order = list(renderers.items())
        for name, render in order if r % 2 == 0 else order[::-1]:
            seconds = _once(render, blocks, text)
            best[name] = min(best.get(name, seconds), seconds)
    best["blocks"] = len(blocks)
    return best
