"""The renderer of untrusted answers, timed in this process (``run.py`` section ``render``).

Three ways of turning the same Markdown answer into HTML, interleaved round by round:

* ``reference``: markdown-it alone, raw HTML off — the renderer before answers were sanitized
  (kept here as the reference; the package no longer has it);
* ``to_html``: koine's renderer (markdown-it, link and image rules, nh3's allowlist), the whole
  answer at once (``--no-stream``, the final result);
* ``live``: what markdown mode does while an answer streams: each finished block rendered once
  as it completes (``BlockSplitter``), then the final answer once more.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["render_times"]


def _reference() -> Callable[[str], str]:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False})
    md.enable(["table", "strikethrough"])
    return md.render


def _live(answer: str, pieces: int = 2000) -> None:
    from koine_jupyter.views._markdown import BlockSplitter, to_html

    splitter = BlockSplitter()
    step = max(1, len(answer) // pieces)
    for i in range(0, len(answer), step):
        for block in splitter.feed(answer[i : i + step]):
            to_html(block.markdown)
    to_html(splitter.tail_markdown)
    to_html(answer)


def render_times(answer: str, rounds: int) -> dict[str, float]:
    """Median seconds of each way over ``rounds`` interleaved rounds."""
    from koine_jupyter.views._markdown import to_html

    reference = _reference()
    ways: dict[str, Callable[[], Any]] = {
        "reference": lambda: reference(answer),
        "to_html": lambda: to_html(answer),
        "live": lambda: _live(answer),
    }
    for run in ways.values():  # warm-up: imports, lexers
        run()
    times: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(rounds):
        order = list(ways) if r % 2 == 0 else list(ways)[::-1]
        for name in order:
            start = time.perf_counter()
            ways[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
