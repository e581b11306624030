"""Bytes → events: an incremental Server-Sent Events decoder with no I/O inside (sans-IO).

Feed it the response body in whatever pieces the network delivers; it hands back the events that
became complete. It follows the WHATWG "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):

* lines end with CRLF, LF or CR — and nothing else (``\\x0b``, ``\\x85``, ``\\u2028``... are
  ordinary characters that may appear inside JSON strings); a CR at the end of one chunk and an
  LF at the start of the next are one line break;
* ``field: value`` (one leading space of the value is dropped); a line without a colon is a field
  with an empty value; lines starting with ``:`` are comments; unknown fields are ignored;
* ``data`` lines accumulate, joined with ``"\\n"``; a blank line dispatches the event; an event
  without any ``data`` line is not dispatched; an event without ``event:`` is called
  ``"message"``;
* ``id`` values containing NUL are ignored; ``retry`` is used only when it is all ASCII digits;
* one UTF-8 byte order mark at the very start of the stream is skipped.

The body is decoded as UTF-8 *incrementally*: a multi-byte character split between two chunks is
never damaged (invalid bytes become U+FFFD, decoding never raises).

**End of body** (:meth:`SSEDecoder.close`): a line cut mid-way (no line break after it) is
dropped, as the spec says. **Deviation from browsers:** an event whose lines all arrived whole
(each ended by a line break) but whose closing blank line never came is still dispatched. The
spec (written for endless, reconnecting streams) discards it; here it is complete data — a final
``error`` event must reach the user with its own code, and a ``done`` must not turn a normal end
into an error — while a half line may be a truncated JSON value and is never handed on.

Cost is linear in the input: between feeds only the unfinished last line is kept, as a list of
pieces joined once when its line break arrives, so a 1 MB event arriving in 1 KB chunks is never
re-scanned.
"""

from __future__ import annotations

import codecs
from typing import NamedTuple

from ._response_limits import too_large

__all__ = ["SSEDecoder", "ServerSentEvent"]

_BOM = "\ufeff"


class ServerSentEvent(NamedTuple):
    """One dispatched event (an immutable named tuple: about three times cheaper to build than a
    frozen dataclass, and one is built per event).

    Attributes:
        event: the event type; ``"message"`` when the event had no ``event:`` field.
        data: the ``data:`` lines joined with ``"\\n"``.
        id: the stream's last event id when this event was dispatched (per the spec it persists
            across events until an ``id:`` line changes it); ``None`` if no ``id:`` was ever seen.
        retry: the reconnection time in milliseconds, if a valid ``retry:`` line came with this
            event (since the previous dispatch); else ``None``.
    """

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental SSE parser: ``feed(chunk)`` for every body chunk, ``close()`` at the end.

    Both return the events completed by that call, in order. Never raises on any input, but
    past ``max_line`` characters in one line or ``max_event`` characters in one event's data
    (when given), which is ``KoineError("RESPONSE_TOO_LARGE")``. After :meth:`close` the
    decoder is reset and can parse a new stream.
    """

    __slots__ = (
        "_data",
        "_data_len",
        "_decoder",
        "_event",
        "_last_id",
        "_max_event",
        "_max_line",
        "_pending",
        "_pending_len",
        "_retry",
        "_skip_lf",
        "_started",
    )

    def __init__(self, *, max_line: int | None = None, max_event: int | None = None) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # Pieces of the unfinished last line (never contain "\r" or "\n"), and their length.
        self._pending: list[str] = []
        self._pending_len = 0
        # Bounds (characters) on one line and on one event's data: past them feed() raises
        # KoineError("RESPONSE_TOO_LARGE") instead of holding more.
        self._max_line = max_line
        self._max_event = max_event
        self._data_len = 0
        # True when the text seen so far ended with "\r": a "\n" right after it is the same
        # line break and must be dropped.
        self._skip_lf = False
        # False until the first character was decoded (for the BOM rule).
        self._started = False
        # The event being built.
        self._data: list[str] = []
        self._event = ""
        self._retry: int | None = None
        self._last_id: str | None = None

    @property
    def last_event_id(self) -> str | None:
        """The last ``id:`` value seen (``None`` if none): what a reconnect would send."""
        return self._last_id

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode one chunk of the body (any split of the byte stream); return finished events."""
        if not chunk:
            return []
        return self._feed_text(self._decoder.decode(chunk))

    def close(self) -> list[ServerSentEvent]:
        """Signal the end of the body and return the last events.

        A last line without its line break is dropped (it may be cut mid-way); an event whose
        lines all arrived whole is dispatched even without its closing blank line (see the
        module docstring).
        """
        events = self._feed_text(self._decoder.decode(b"", True))
        self._pending = []
        self._pending_len = 0
        if self._data:
            self._dispatch(events)
        self._reset()
        return events

    # -- internals ---------------------------------------------------------------------------

    def _reset(self) -> None:
        self._decoder.reset()
        self._pending = []
        self._pending_len = 0
        self._data_len = 0
        self._skip_lf = False
        self._started = False
        self._data = []
        self._event = ""
        self._retry = None
        self._last_id = None

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        events: list[ServerSentEvent] = []
        if not text:
            return events
        if not self._started:
            self._started = True
            if text[0] == _BOM:
                text = text[1:]
                if not text:
                    return events
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return events
        if "\r" in text:
            if text[-1] == "\r":
                self._skip_lf = True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        max_line = self._max_line
        if len(lines) == 1:
            # No line break in this chunk: keep the piece, do not re-scan or copy the rest.
            self._pending_len += len(text)
            if max_line is not None and self._pending_len > max_line:
                self._pending = []
                raise too_large("event-stream line", max_line, "characters")
            self._pending.append(text)
            return events
        last = lines.pop()
        if self._pending:
            if max_line is not None and self._pending_len + len(lines[0]) > max_line:
                self._pending = []
                raise too_large("event-stream line", max_line, "characters")
            self._pending.append(lines[0])
            lines[0] = "".join(self._pending)
            self._pending = []
        self._pending_len = len(last)
        if last:
            if max_line is not None and len(last) > max_line:
                raise too_large("event-stream line", max_line, "characters")
            self._pending.append(last)
        max_event = self._max_event
        for line in lines:
            if max_line is not None and len(line) > max_line:
                self._data = []
                raise too_large("event-stream line", max_line, "characters")
            # The three lines the gateway always sends, handled without the generic parse.
            if line.startswith("data: "):
                self._data.append(line[6:])
                if max_event is not None:
                    self._data_len += len(line) - 6
                    if self._data_len > max_event:
                        self._data = []
                        raise too_large("event", max_event, "characters")
            elif not line:
                self._data_len = 0
                data = self._data
                if data:
                    events.append(
                        ServerSentEvent(
                            self._event or "message",
                            data[0] if len(data) == 1 else "\n".join(data),
                            self._last_id,
                            self._retry,
                        )
                    )
                    self._data = []
                self._event = ""
                self._retry = None
            elif line.startswith("event: "):
                self._event = line[7:]
            else:
                self._process_line(line, events)
        return events

    def _process_line(self, line: str, events: list[ServerSentEvent]) -> None:
        if not line:
            if self._data:
                self._dispatch(events)
            else:
                self._event = ""
                self._retry = None
            return
        if line[0] == ":":
            return  # a comment
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
            if self._max_event is not None:
                self._data_len += len(value)
                if self._data_len > self._max_event:
                    self._data = []
                    raise too_large("event", self._max_event, "characters")
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        # Any other field is ignored.

    def _dispatch(self, events: list[ServerSentEvent]) -> None:
        self._data_len = 0
        events.append(
            ServerSentEvent(
                self._event or "message", "\n".join(self._data), self._last_id, self._retry
            )
        )
        self._data = []
        self._event = ""
        self._retry = None
