"""How much of a response the SDK will hold: a gateway (or whatever answers in its place) is
outside the program, and no answer may exhaust memory.

Each limit is checked while the bytes arrive, so memory stays bounded by the limit, not by
what is sent. Exceeding one is ``KoineError("RESPONSE_TOO_LARGE")``; JSON nested deeper than
``max_depth`` is ``INVALID_RESPONSE`` (a body) or ``SSE_PARSE_ERROR`` (an event), checked on the
text before it is parsed. Without it the outcome hung on the caller's stack: ``RecursionError``
(caught, as a second line of defence) fired at a depth that depends on how many frames were
already in use, so the same answer passed from a script and failed inside a deep callback.

The defaults are generous against what the real gateway sends (PROTOCOL.md): an answer is the
CLI's output, a few KB to a few hundred KB (the CLI's own output limits keep it far below
16 MiB); ``/stream-object`` re-sends the whole partial
object in each ``partial-object`` event, so one event can be as large as the answer. Answers
follow a schema, which nests a few levels; ``max_depth`` allows 64.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Literal

from .errors import KoineError

__all__ = ["DEFAULT_LIMITS", "ResponseLimits", "check_depth", "nesting_depth_exceeds", "too_large"]

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """Upper bounds on what one response may hold (``KoineConfig(limits=...)``).

    Args:
        max_body_bytes: the body of a non-streaming answer (2xx JSON) — 16 MiB.
        max_line_chars: one line of an event stream — 16 Mi characters.
        max_event_chars: the data of one event (all its ``data:`` lines) — 16 Mi characters.
        max_answer_chars: the text a stream accumulates — 32 Mi characters.
        max_depth: how deeply JSON arrays and objects may nest in a body or an event — 64.
    """

    max_body_bytes: int = 16 * _MiB
    max_line_chars: int = 16 * _MiB
    max_event_chars: int = 16 * _MiB
    max_answer_chars: int = 32 * _MiB
    max_depth: int = 64

    def checked(self) -> ResponseLimits:
        """This, or ``KoineError("INVALID_CONFIG")`` naming a limit that is not a positive int."""
        for name in self.__slots__:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise KoineError(
                    f"limits.{name} must be a positive whole number (got {value!r})",
                    "INVALID_CONFIG",
                )
        return self


DEFAULT_LIMITS = ResponseLimits()


def too_large(what: str, limit: int, unit: str = "bytes") -> KoineError:
    """The error of a response part over its limit."""
    return KoineError(
        f"the response's {what} is larger than the limit of {limit:,} {unit}; the rest was not "
        "read (raise it with KoineConfig(limits=ResponseLimits(...)) if the gateway is trusted)",
        "RESPONSE_TOO_LARGE",
    )


_STR_TEXT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STR_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_TEXT = re.compile(r"[^\[\]{}]+")
_NOT_BRACKET_BYTES = re.compile(rb"[^\[\]{}]+")
_STEP: dict[str | int, int] = {"[": 1, "{": 1, "]": -1, "}": -1, 91: 1, 123: 1, 93: -1, 125: -1}


def nesting_depth_exceeds(text: str | bytes, max_depth: int) -> bool:
    """Whether JSON ``text`` nests arrays/objects deeper than ``max_depth`` (brackets inside
    strings do not count). Linear and without recursion; text with at most ``max_depth``
    opening brackets in all (nearly every answer) costs two ``count`` calls.

    ``' "'`` is appended before strings are removed, so every string the scan opens is closed
    (an unterminated one ends there, a trailing backslash escapes the space): each ``"`` then
    starts at most one match and the scan stays linear on hostile text."""
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= max_depth:
            return False
        brackets: str | bytes = _NOT_BRACKET_TEXT.sub("", _STR_TEXT.sub("", text + ' "'))
    else:
        if text.count(b"[") + text.count(b"{") <= max_depth:
            return False
        brackets = _NOT_BRACKET_BYTES.sub(b"", _STR_BYTES.sub(b"", text + b' "'))
    return max(itertools.accumulate(map(_STEP.__getitem__, brackets)), default=0) > max_depth


def check_depth(
    text: str | bytes,
    max_depth: int,
    code: Literal["INVALID_RESPONSE", "SSE_PARSE_ERROR"],
    what: str,
) -> None:
    """Raise ``code`` (quoting the start of ``text``) when it nests deeper than ``max_depth``."""
    if nesting_depth_exceeds(text, max_depth):
        raw = text if isinstance(text, str) else text[:4096].decode("utf-8", "replace")
        raise KoineError(
            f"{what} nests JSON arrays/objects deeper than {max_depth} levels "
            "(ResponseLimits.max_depth)",
            code,
            raw[:4096],
        )
