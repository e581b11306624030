"""Markdown for live views: an incremental block splitter.

:class:`BlockSplitter` cuts a growing Markdown text into blocks at blank lines outside code
fences, and cuts a block that grows past ``max_block`` characters inside a code fence at a line
end (the piece is closed, the rest reopened with the same fence line). A block, once finished,
never changes, so a live view sends it once and only re-sends the growing last block, which
stays short. Blocks are drawn by :mod:`._untrusted` (the one renderer of model text: raw HTML
escaped, links checked, an allowlist pass over the result).
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["Block", "BlockSplitter", "close_open_fence"]

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
