"""How much of a response the SDK will hold: a gateway (or whatever answers in its place) is
outside the program, and no answer may exhaust memory.

Each limit is checked while the bytes arrive, so memory stays bounded by the limit, not by
what is sent. Exceeding one is ``KoineError("RESPONSE_TOO_LARGE")``; JSON nested deeper than
Python can parse is ``INVALID_RESPONSE`` (a body) or ``SSE_PARSE_ERROR`` (an event).

The defaults are generous against what the real gateway sends (PROTOCOL.md): an answer is the
CLI's output, a few KB to a few hundred KB (the CLI's own output limits keep it far below
16 MiB); ``/stream-object`` re-sends the whole partial
object in each ``partial-object`` event, so one event can be as large as the answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import KoineError

__all__ = ["DEFAULT_LIMITS", "ResponseLimits", "too_large"]

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ResponseLimits:
    """Upper bounds on what one response may hold (``KoineConfig(limits=...)``).

    Args:
        max_body_bytes: the body of a non-streaming answer (2xx JSON) — 16 MiB.
        max_line_chars: one line of an event stream — 16 Mi characters.
        max_event_chars: the data of one event (all its ``data:`` lines) — 16 Mi characters.
        max_answer_chars: the text a stream accumulates — 32 Mi characters.
    """

    max_body_bytes: int = 16 * _MiB
    max_line_chars: int = 16 * _MiB
    max_event_chars: int = 16 * _MiB
    max_answer_chars: int = 32 * _MiB

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
