"""Declarative faults and scripted replies for the local gateway.

A :class:`Fault` describes one way a request goes wrong (a proxy error page, a dropped connection,
a malformed ``data:`` line, ...). A :class:`Reply` scripts what the "model" answers for one request
(exact text chunks, an object streamed as JSON text, raw text, latency) and may carry faults.
Both are plain frozen dataclasses: build them with the class methods, queue them with
:meth:`LocalGateway.enqueue` (or write the matching ``[[directive]]`` in a prompt).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._text import split_pieces

__all__ = ["Fault", "FaultKind", "Reply"]

_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_GATEWAY_BODIES: dict[int, dict[str, str]] = {
    401: {"error": "Missing authorization header"},
    403: {"error": "Invalid API key"},
    429: {"error": "Concurrency limit exceeded", "code": "CONCURRENCY_LIMIT_ERROR"},
    500: {"error": "Internal server error", "code": "INTERNAL_ERROR"},
}
JSON_TYPE = "application/json; charset=utf-8"


class FaultKind(enum.Enum):
    """What a :class:`Fault` does. The value is the prompt directive that triggers it."""

    HTTP_STATUS = "status"
    """Answer with ``status``/``body``/``headers`` instead of the gateway (a proxy in front)."""
    CLOSE_BEFORE_HEADERS = "close-before-headers"
    """Close the connection before any byte of the response is sent."""
    SLOW_FIRST_BYTE = "first-byte"
    """Wait ``delay`` seconds before the response headers."""
    CLI_ERROR = "fail-after"
    """The CLI exits with code 1 after ``after`` chunks: ``error`` CLI_EXIT_ERROR, ``done`` code 1
    (a 500 CLI_EXIT_ERROR on the non-streaming endpoints)."""
    IS_ERROR = "is-error"
    """The CLI reports an error result after its output (500 / ``error`` + ``done`` code 1)."""
    NO_RESULT = "noresult"
    """The CLI prints no result line: 500 PARSE_ERROR, or a stream without ``result``."""
    DROP = "drop-after"
    """Close the connection after ``after`` chunks: no ``done`` (on JSON endpoints: no response)."""
    MALFORMED_LINE = "malformed-after"
    """Send a ``data:`` line that is not valid JSON after ``after`` chunks."""
    UNKNOWN_EVENTS = "unknown-events"
    """Interleave events with names no client knows (``x-koine-future``)."""
    EXTRA_WARNINGS = "warnings"
    """Add ``warning`` BUFFER_PARSE_WARNING events after ``session`` and before the end."""
    CRLF = "crlf"
    """Frame every event with ``\\r\\n`` line endings."""
    SPLIT_UTF8 = "split-utf8"
    """Send the first event holding a multi-byte character in two network writes that cut the
    character in half (``delay`` seconds apart). Adds the ``[[unicode]]`` text if needed."""
    HUGE_EVENT = "huge"
    """Reply with one text event of ``size`` bytes (text endpoints)."""
    EVENTS_AFTER_DONE = "after-done"
    """Send a ``text`` and a second ``done`` event after ``done``."""
    NO_OBJECT = "no-object"
    """``/stream-object`` sends no ``object`` event."""
    INVALID_OBJECT = "invalid-object"
    """The generated object does not satisfy the request's schema."""
    CUT_END = "cut-end"
    """The stream stops at its first closing event (``result`` or ``error``), sent without the
    blank line that ends it (``cut="blank-line"``: its lines are whole) or cut in the middle of
    its ``data:`` line (``cut="mid-line"``); then the connection closes: no ``done``."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure. Build it with a class method, e.g. ``Fault.drop(after=3)``.

    Fields not used by a kind keep their defaults. ``after`` counts model chunks (text deltas, or
    pieces of the JSON text on ``/stream-object``), so ``after=0`` fails before any output.
    """

    kind: FaultKind
    after: int = 0
    status: int = 500
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    size: int = 1_000_000
    message: str | None = None
    cut: str = "blank-line"

    # -- a proxy or network in front of the gateway ------------------------------------------
    @classmethod
    def http_error(cls, status: int = 502, body: str | bytes = "html") -> Fault:
        """Answer ``status`` with an HTML page (``body="html"``), nothing (``"empty"``), the
        gateway's own JSON error (``"json"``) or the given text/bytes."""
        content_type = "text/html"
        if body == "html":
            reason = _REASONS.get(status, "Error")
            raw = _HTML_PAGE.format(status=status, reason=reason).encode()
        elif body == "empty":
            raw, content_type = b"", ""
        elif body == "json":
            payload = _GATEWAY_BODIES.get(status, {"error": "Error", "code": "UNKNOWN_ERROR"})
            raw, content_type = json.dumps(payload, separators=(",", ":")).encode(), JSON_TYPE
        else:
            raw = body.encode() if isinstance(body, str) else body
            content_type = "text/plain; charset=utf-8"
        headers = (("content-type", content_type),) if content_type else ()
        return cls(FaultKind.HTTP_STATUS, status=status, body=raw, headers=headers)

    @classmethod
    def unauthorized(cls) -> Fault:
        """A 401 exactly as the gateway sends it for a missing key."""
        return cls.http_error(401, "json")

    @classmethod
    def forbidden(cls) -> Fault:
        """A 403 exactly as the gateway sends it for a wrong key."""
        return cls.http_error(403, "json")

    @classmethod
    def rate_limited(cls, retry_after: int | None = 5) -> Fault:
        """A 429 CONCURRENCY_LIMIT_ERROR, with ``Retry-After`` unless ``retry_after`` is None."""
        fault = cls.http_error(429, "json")
        if retry_after is None:
            return fault
        return cls(
            FaultKind.HTTP_STATUS,
            status=429,
            body=fault.body,
            headers=(("retry-after", str(retry_after)), *fault.headers),
        )

    @classmethod
    def close_before_headers(cls) -> Fault:
        """The server closes the connection before sending the status line."""
        return cls(FaultKind.CLOSE_BEFORE_HEADERS)

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        """Nothing is sent for ``seconds`` (the request holds its concurrency slot meanwhile)."""
        return cls(FaultKind.SLOW_FIRST_BYTE, delay=seconds)

    # -- the CLI behind the gateway ----------------------------------------------------------
    @classmethod
    def cli_error(cls, after: int = 0, message: str | None = None) -> Fault:
        """The CLI exits with code 1 after ``after`` chunks (0: before any output)."""
        return cls(FaultKind.CLI_ERROR, after=after, message=message)

    @classmethod
    def is_error(cls) -> Fault:
        """The CLI ends with an error result (``is_error: true``) and exit code 1."""
        return cls(FaultKind.IS_ERROR)

    @classmethod
    def no_result(cls) -> Fault:
        """The CLI prints no result line."""
        return cls(FaultKind.NO_RESULT)

    # -- the stream on the wire --------------------------------------------------------------
    @classmethod
    def drop(cls, after: int = 0) -> Fault:
        """Close the connection after ``after`` chunks, without ``done``."""
        return cls(FaultKind.DROP, after=after)

    @classmethod
    def malformed_line(cls, after: int = 0) -> Fault:
        """Send ``event: text`` with a ``data:`` line that is not JSON after ``after`` chunks."""
        return cls(FaultKind.MALFORMED_LINE, after=after)

    @classmethod
    def unknown_events(cls) -> Fault:
        """Send an event with an unknown name before every event but ``session``."""
        return cls(FaultKind.UNKNOWN_EVENTS)

    @classmethod
    def extra_warnings(cls) -> Fault:
        """Send ``warning`` events (BUFFER_PARSE_WARNING) after ``session`` and before the end."""
        return cls(FaultKind.EXTRA_WARNINGS)

    @classmethod
    def crlf(cls) -> Fault:
        """Use ``\\r\\n`` line endings in the event framing."""
        return cls(FaultKind.CRLF)

    @classmethod
    def split_utf8(cls, pause: float = 0.05) -> Fault:
        """Cut a multi-byte UTF-8 character across two writes, ``pause`` seconds apart."""
        return cls(FaultKind.SPLIT_UTF8, delay=pause)

    @classmethod
    def huge_event(cls, size: int = 1_000_000) -> Fault:
        """Reply with a single ``text`` event of ``size`` bytes of text."""
        return cls(FaultKind.HUGE_EVENT, size=size)

    @classmethod
    def events_after_done(cls) -> Fault:
        """Send more events after ``done``."""
        return cls(FaultKind.EVENTS_AFTER_DONE)

    @classmethod
    def cut_end(cls, cut: str = "blank-line") -> Fault:
        """End the stream inside its first closing event, without ``done``: ``"blank-line"``
        (every line whole, the event's blank line missing) or ``"mid-line"`` (its ``data:``
        line cut in the middle)."""
        if cut not in ("blank-line", "mid-line"):
            raise ValueError(f"cut must be 'blank-line' or 'mid-line' (got {cut!r})")
        return cls(FaultKind.CUT_END, cut=cut)

    @classmethod
    def no_object(cls) -> Fault:
        """``/stream-object`` skips its ``object`` event."""
        return cls(FaultKind.NO_OBJECT)

    @classmethod
    def invalid_object(cls) -> Fault:
        """The generated object violates the schema (a wrong type in the first property)."""
        return cls(FaultKind.INVALID_OBJECT)


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer for one request.

    ``chunks`` is the model's output, piece by piece: on ``/stream`` every piece is one ``text``
    event; on ``/stream-object`` the pieces are concatenated into the JSON text that is parsed
    (``partial-object`` events); the non-streaming endpoints join them. ``None`` keeps the
    deterministic model's own answer (useful to attach only faults or latency).
    ``first_byte_delay`` waits before the response headers; ``chunk_delay`` before every piece.
    """

    chunks: tuple[str, ...] | None = None
    first_byte_delay: float | None = None
    chunk_delay: float | None = None
    faults: tuple[Fault, ...] = field(default=())

    @classmethod
    def text(
        cls,
        chunks: str | Iterable[str],
        *,
        first_byte_delay: float | None = None,
        chunk_delay: float | None = None,
        faults: Sequence[Fault] = (),
    ) -> Reply:
        """Exact text pieces (a single string is one piece)."""
        pieces = (chunks,) if isinstance(chunks, str) else tuple(chunks)
        return cls(pieces, first_byte_delay, chunk_delay, tuple(faults))

    @classmethod
    def object(
        cls,
        value: Any,
        *,
        piece_size: int = 7,
        first_byte_delay: float | None = None,
        chunk_delay: float | None = None,
        faults: Sequence[Fault] = (),
    ) -> Reply:
        """Any JSON value, sent as its JSON text (``json.dumps`` spacing, like the gateway's
        captures) cut into pieces of ``piece_size`` characters."""
        pieces = tuple(split_pieces(json.dumps(value, ensure_ascii=False), piece_size))
        return cls(pieces, first_byte_delay, chunk_delay, tuple(faults))

    @classmethod
    def raw(
        cls,
        text: str,
        *,
        first_byte_delay: float | None = None,
        chunk_delay: float | None = None,
        faults: Sequence[Fault] = (),
    ) -> Reply:
        """Model output that is not clean JSON (prose, a Markdown fence), in one piece: the object
        endpoints then fall back to extraction (``warning`` EXTRACTION_FALLBACK) or fail."""
        return cls((text,), first_byte_delay, chunk_delay, tuple(faults))

    @classmethod
    def faulty(cls, *faults: Fault) -> Reply:
        """The model's own answer, with faults."""
        return cls(faults=faults)
