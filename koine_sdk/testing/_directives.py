"""Prompt directives: the ``[[name]]`` / ``[[name=value]]`` switches the echo model obeys, and
how a prompt is parsed into its clean text and :class:`Directives`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._faults import Fault

__all__ = ["DIRECTIVES", "Directives", "parse_directives"]

DIRECTIVES: dict[str, str] = {
    "chunks=N": "split the reply into N pieces of equal length (code points)",
    "nopartial": "send the reply in one piece",
    "delay=S": "wait S seconds before any output (after the session event)",
    "slow=S": "wait S seconds before every piece",
    "fail": "the CLI exits with code 1 before any output",
    "fail-after=N": "the CLI exits with code 1 after N pieces",
    "is-error": "the CLI ends with an error result",
    "noresult": "the CLI prints no result line",
    "args": "reply with the JSON of the CLI arguments (model, system, tools, resume)",
    "history": "append ' | history: <earlier prompts of the session joined by / >'",
    "unicode": "append a multi-byte sample to the text; object strings become non-ASCII",
    "rawline": "/stream: a line that is not JSON comes first (forwarded as a text event)",
    "badjson": "reply with prose instead of JSON",
    "fence": "wrap the JSON reply in a Markdown fence (EXTRACTION_FALLBACK)",
    "items=N": "arrays in generated objects get N items (default 2)",
    "bytes=N": "reply with exactly N bytes of UTF-8 text",
    "drop-after=N": "close the connection after N pieces (no done)",
    "close-before-headers": "close the connection before the response starts",
    "first-byte=S": "wait S seconds before the response headers",
    "malformed-after=N": "send a data: line that is not JSON after N pieces",
    "unknown-events": "interleave events with unknown names",
    "warnings": "add BUFFER_PARSE_WARNING warning events",
    "crlf": "frame events with CRLF line endings",
    "split-utf8": "cut a multi-byte character across two network writes",
    "huge=N": "reply with a single text event of N bytes (default 1000000)",
    "after-done": "send events after done",
    "no-object": "/stream-object sends no object event",
    "invalid-object": "the generated object violates the schema",
    "invalid-object=N": "the first N answers of this conversation violate the schema (this "
    "turn counts as the first; a repair in the same session gets the next)",
    "cut-end[=mid-line]": "the stream stops inside its result/error event, without done",
    "status=CODE[:html|empty|json|no-retry-after]": "answer CODE like a proxy would",
}

_DIRECTIVE_RE = re.compile(r"\s*\[\[([a-z-]+)(?:=([^\]\s]*))?\]\]")
_FLAGS = {"nopartial", "args", "history", "unicode", "rawline", "badjson", "fence"}
_INTS = {"chunks", "items", "bytes"}
_FLOATS = {"delay", "slow"}


@dataclass(slots=True)
class Directives:
    """What the ``[[...]]`` directives of a prompt asked for."""

    chunks: int | None = None
    items: int = 2
    bytes: int | None = None
    delay: float = 0.0
    slow: float = 0.0
    nopartial: bool = False
    args: bool = False
    history: bool = False
    unicode: bool = False
    rawline: bool = False
    badjson: bool = False
    fence: bool = False
    invalid_turns: int = 0
    faults: list[Fault] = field(default_factory=list[Fault])


def _fault_directive(name: str, value: str | None) -> Fault | None:
    number = int(value) if value is not None and value.isdigit() else None
    if name == "fail" and value is None:
        return Fault.cli_error(0, "Error: simulated CLI failure requested by [[fail]] directive")
    if name == "fail-after" and number is not None:
        return Fault.cli_error(
            number, "Error: simulated CLI failure requested by [[fail-after]] directive"
        )
    if name == "drop-after" and number is not None:
        return Fault.drop(number)
    if name == "malformed-after" and number is not None:
        return Fault.malformed_line(number)
    if name == "huge":
        return Fault.huge_event(number if number is not None else 1_000_000)
    if name == "cut-end" and value in (None, "blank-line", "mid-line"):
        return Fault.cut_end(value or "blank-line")
    if name == "first-byte" and value is not None:
        return Fault.slow_first_byte(float(value))
    if name == "status" and value is not None:
        code, _, mode = value.partition(":")
        status = int(code)
        if mode == "no-retry-after":
            return Fault.rate_limited(None)
        if status == 429 and not mode:
            return Fault.rate_limited()
        default = "json" if status in (401, 403) else "html"
        return Fault.http_error(status, mode or default)
    if value is None:
        simple = {
            "is-error": Fault.is_error,
            "noresult": Fault.no_result,
            "close-before-headers": Fault.close_before_headers,
            "unknown-events": Fault.unknown_events,
            "warnings": Fault.extra_warnings,
            "crlf": Fault.crlf,
            "split-utf8": Fault.split_utf8,
            "after-done": Fault.events_after_done,
            "no-object": Fault.no_object,
            "invalid-object": Fault.invalid_object,
        }.get(name)
        return simple() if simple else None
    return None


def parse_directives(prompt: str) -> tuple[str, Directives]:
    """Strip the known directives from ``prompt``; unknown ``[[...]]`` stay in the text."""
    found = Directives()

    def take(match: re.Match[str]) -> str:
        name, value = match.group(1), match.group(2)
        try:
            if name in _FLAGS and value is None:
                setattr(found, name, True)
            elif name in _INTS and value is not None:
                setattr(found, name, max(0, int(value)))
            elif name in _FLOATS and value is not None:
                setattr(found, name, max(0.0, float(value)))
            elif name == "invalid-object" and value is not None and value.isdigit():
                found.invalid_turns = int(value)
            else:
                fault = _fault_directive(name, value)
                if fault is None:
                    return match.group(0)
                found.faults.append(fault)
        except ValueError:
            return match.group(0)
        return ""

    clean = _DIRECTIVE_RE.sub(take, prompt).strip()
    return clean, found
