"""Events → results: the state machines of ``/stream`` and ``/stream-object``. No I/O here.

The async client, the sync client and the notebook views all feed events into these and read
the same state back, so the protocol's rules live in one place:

- the ``session`` event's id is provisional on a new conversation; only ``result.sessionId``
  can be resumed (PROTOCOL.md, "Two session ids");
- an ``error`` event may follow partial output; ``done`` still follows and ends the stream;
- a stream that ends without ``done`` is an error, never a normal end;
- unknown events are ignored; events after ``done`` are ignored.
"""

from __future__ import annotations

import json
import json.decoder
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from ._partial import PartialParser
from ._sse import ServerSentEvent
from .errors import KoineError
from .types import KoineUsage

__all__ = ["ObjectStreamState", "StreamState", "StreamWarning", "TextStreamState"]

T = TypeVar("T")

# json's C string scanner (not in typeshed): (text, index after the opening quote) → (str, end).
_scanstring = cast(
    Callable[[str, int], tuple[str, int]],
    json.decoder.scanstring,  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
)


class StreamWarning:
    """A ``warning`` event: ``code`` (e.g. ``EXTRACTION_FALLBACK``) and ``message``."""

    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"StreamWarning(code={self.code!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, StreamWarning)
            and other.code == self.code
            and other.message == self.message
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))


def _load(event: ServerSentEvent) -> dict[str, Any]:
    try:
        data = json.loads(event.data)
    except ValueError:
        raise KoineError(
            f"the gateway sent a {event.event!r} event whose data is not JSON",
            "SSE_PARSE_ERROR",
            event.data[:4096],
        ) from None
    if not isinstance(data, dict):
        raise KoineError(
            f"the gateway sent a {event.event!r} event whose data is not a JSON object",
            "SSE_PARSE_ERROR",
            event.data[:4096],
        )
    return data  # pyright: ignore[reportUnknownVariableType]


def _shape_error(event: ServerSentEvent, what: str) -> KoineError:
    return KoineError(
        f"the gateway sent a {event.event!r} event without {what}",
        "SSE_PARSE_ERROR",
        event.data[:4096],
    )


class StreamState:
    """What every stream knows: session ids, usage, warnings, error, done."""

    __slots__ = (
        "done",
        "done_info",
        "error",
        "provisional_session_id",
        "session_id",
        "usage",
        "warnings",
    )

    def __init__(self) -> None:
        self.provisional_session_id: str | None = None
        self.session_id: str | None = None  # the resumable id, from ``result``
        self.usage: KoineUsage | None = None
        self.warnings: list[StreamWarning] = []
        self.error: KoineError | None = None
        self.done: bool = False
        self.done_info: dict[str, Any] | None = None

    def _common(self, event: ServerSentEvent) -> bool:
        """Handle the events both endpoints share; return False for an event not handled."""
        name = event.event
        if name == "session":
            sid = _load(event).get("sessionId")
            if not isinstance(sid, str):
                raise _shape_error(event, "a sessionId")
            self.provisional_session_id = sid
        elif name == "result":
            data = _load(event)
            sid = data.get("sessionId")
            if not isinstance(sid, str):
                raise _shape_error(event, "a sessionId")
            try:
                self.usage = KoineUsage.model_validate(data.get("usage"))
            except ValueError:
                raise _shape_error(event, "a valid usage") from None
            self.session_id = sid
        elif name == "error":
            data = _load(event)
            message = data.get("error")
            code = data.get("code")
            self.error = KoineError(
                message if isinstance(message, str) else "the gateway reported an error",
                code if isinstance(code, str) and code else "STREAM_ERROR",
                raw_text=event.data,
            )
        elif name == "warning":
            data = _load(event)
            self.warnings.append(
                StreamWarning(str(data.get("code", "")), str(data.get("message", "")))
            )
        elif name == "done":
            self.done_info = _load(event)
            self.done = True
        else:
            return False
        return True

    def end_of_body(self) -> None:
        """The HTTP body ended. Raise if the stream did not end properly."""
        if not self.done:
            raise KoineError(
                "the stream ended before the gateway's 'done' event (connection dropped?)",
                "STREAM_INCOMPLETE",
            )

    def check_result(self) -> None:
        """After ``done``: raise the stream's error, or complain about a missing ``result``."""
        if self.error is not None:
            raise self.error
        if self.session_id is None or self.usage is None:
            raise KoineError("the stream ended without a 'result' event", "STREAM_INCOMPLETE")


class TextStreamState(StreamState):
    """``/stream``: ``text`` deltas accumulate into the answer (unless ``keep_text=False``:
    then nothing is kept, memory stays flat however long the stream, and :attr:`text` raises)."""

    __slots__ = ("_keep", "_parts")

    def __init__(self, keep_text: bool = True) -> None:
        super().__init__()
        self._parts: list[str] = []
        self._keep = keep_text

    def feed(self, event: ServerSentEvent) -> str | None:
        """Take one event; return the text delta it carries (``None`` for other events)."""
        if self.done:
            return None  # events after done are ignored
        if event.event == "text":
            data = event.data
            text: Any = None
            if data.startswith('{"text":"') and data.endswith('"}'):
                # The gateway's own framing: decode just the string (json's C scanner), about
                # 3x cheaper than json.loads; anything else takes the general path below.
                try:
                    text, end = _scanstring(data, 9)
                except ValueError:
                    text = None
                else:
                    if end != len(data) - 1:
                        text = None
            if text is None:
                try:
                    text = json.loads(data)["text"]
                except (ValueError, KeyError, TypeError):
                    raise _shape_error(event, "a JSON text field") from None
            if not isinstance(text, str):
                raise _shape_error(event, "a string text field")
            if self._keep:
                self._parts.append(text)
            return text
        self._common(event)
        return None

    @property
    def text(self) -> str:
        """All text received so far."""
        if not self._keep:
            raise KoineError(
                "this stream was opened with keep_text=False and does not keep its text; "
                "join the chunks of text_stream instead",
                "INVALID_ARGUMENT",
            )
        if len(self._parts) > 1:
            joined = "".join(self._parts)
            self._parts = [joined]
            return joined
        return self._parts[0] if self._parts else ""


class ObjectStreamState(StreamState, Generic[T]):
    """``/stream-object``: partial objects, then the final ``object``."""

    __slots__ = ("_last_parsed", "_parser", "has_object", "object_data", "partial", "raw_text")

    def __init__(self, parser: PartialParser[T]) -> None:
        super().__init__()
        self._parser = parser
        self.raw_text: str = ""  # the JSON text accumulated so far (``partial``)
        self.partial: Any = None  # the latest partial view
        self.object_data: Any = None
        self.has_object: bool = False
        self._last_parsed: Any = None

    def feed(self, event: ServerSentEvent) -> Any | None:
        """Take one event; return a new partial object when it carries one, else ``None``."""
        if self.done:
            return None
        name = event.event
        if name == "partial-object":
            data = _load(event)
            raw = data.get("partial")
            if isinstance(raw, str):
                self.raw_text = raw
            parsed = data.get("parsed")
            if parsed == self._last_parsed and self.partial is not None:
                return None
            self._last_parsed = parsed
            self.partial = self._parser.parse(parsed)
            return self.partial
        if name == "object":
            data = _load(event)
            if "object" not in data:
                raise _shape_error(event, "an object field")
            self.object_data = data["object"]
            self.has_object = True
            if not self.raw_text or self._last_parsed != self.object_data:
                self.raw_text = json.dumps(self.object_data, ensure_ascii=False)
            if self._last_parsed != self.object_data or self.partial is None:
                self._last_parsed = self.object_data
                self.partial = self._parser.parse(self.object_data)
                return self.partial
            return None
        self._common(event)
        return None

    def final_object(self) -> T:
        """After ``done``: the object validated against the schema (or the stream's error)."""
        if self.error is not None:
            raise self.error
        if not self.has_object:
            raise KoineError("the stream ended without an 'object' event", "STREAM_INCOMPLETE")
        return self._parser.validate_final(self.object_data, self.raw_text)
