"""Text helpers of the local gateway's model: how replies are cut into pieces, sized, counted."""

from __future__ import annotations

import math
import re

__all__ = [
    "UNICODE_TEXT",
    "filler",
    "split_even",
    "split_pieces",
    "split_words",
    "tokens",
]

UNICODE_TEXT = "héllo wörld — 你好，世界 — こんにちは — 🚀✨👩‍💻"
_WORD_RE = re.compile(r"\s*\S+|\s+")


def split_words(text: str) -> list[str]:
    """``"Echo: a b"`` → ``["Echo:", " a", " b"]`` (joins back to the text)."""
    return _WORD_RE.findall(text)


def split_pieces(text: str, size: int) -> list[str]:
    """Cut ``text`` into pieces of ``size`` code points (the last may be shorter)."""
    size = max(1, size)
    return [text[i : i + size] for i in range(0, len(text), size)]


def split_even(text: str, pieces: int) -> list[str]:
    """Cut ``text`` into at most ``pieces`` parts of ``ceil(len / pieces)`` code points."""
    return split_pieces(text, math.ceil(len(text) / max(1, pieces)))


def filler(size: int, unicode: bool = False) -> str:
    """A text of exactly ``size`` bytes of UTF-8 (multi-byte characters when ``unicode``)."""
    unit = (UNICODE_TEXT + " ") if unicode else "lorem ipsum dolor sit amet "
    text = unit * (size // len(unit.encode()))
    left = size - len(text.encode())
    tail: list[str] = []
    for char in unit:
        width = len(char.encode())
        if width > left:
            break
        tail.append(char)
        left -= width
    return text + "".join(tail) + "." * left


def tokens(text: str) -> int:
    """A plausible token count (about four characters per token, as the captures suggest)."""
    return max(1, math.ceil(len(text) / 4))
