"""Events → results: the state machines of ``/stream`` and ``/stream-object``. No I/O here.

The async client, the sync client and the notebook views all feed events into these and read
the same state back, so the protocol's rules live in one place:

- the ``session`` event's id is provisional on a new conversation; only ``result.sessionId``
  can be resumed (PROTOCOL.md, "Two session ids");
- an ``error`` event may follow partial output; ``done`` still follows and ends the stream;
- a stream that ends without ``done`` is an error, never a normal end (its own ``error`` event
  wins if one arrived);
- ``done`` code 0 without ``result``: the text / object that arrived is complete; only the usage
  (``NO_USAGE``) and the session id (``NO_SESSION``) are missing;
- a ``partial-object`` event that cannot be read is skipped with a :class:`StreamWarning` (the
  final ``object`` event carries the answer); any other malformed event raises;
- unknown events are ignored; events after ``done`` are ignored.
"""

from __future__ import annotations

import json
import json.decoder
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from ._objects import PartialBuilder, PartialParser
from ._response_limits import DEFAULT_LIMITS, check_depth, too_large
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


def _load(event: ServerSentEvent, max_depth: int) -> dict[str, Any]:
    check_depth(event.data, max_depth, "SSE_PARSE_ERROR", f"a {event.event!r} event")
    try:
        data = json.loads(event.data)
    except (ValueError, RecursionError):
        raise KoineError(
            f"the gateway sent a {event.event!r} event whose data is not JSON (or is nested "
            "too deeply)",
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
        "_max_depth",
        "done",
        "done_info",
        "error",
        "provisional_session_id",
        "session_id",
        "usage",
        "warnings",
    )

    def __init__(self, max_depth: int = DEFAULT_LIMITS.max_depth) -> None:
        self._max_depth = max_depth  # JSON nesting accepted in an event (SSE_PARSE_ERROR past it)
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
            sid = _load(event, self._max_depth).get("sessionId")
            if not isinstance(sid, str):
                raise _shape_error(event, "a sessionId")
            self.provisional_session_id = sid
        elif name == "result":
            data = _load(event, self._max_depth)
            sid = data.get("sessionId")
            if not isinstance(sid, str):
                raise _shape_error(event, "a sessionId")
            try:
                self.usage = KoineUsage.model_validate(data.get("usage"))
            except ValueError:
                raise _shape_error(event, "a valid usage") from None
            self.session_id = sid
        elif name == "error":
            data = _load(event, self._max_depth)
            message = data.get("error")
            code = data.get("code")
            self.error = KoineError(
                message if isinstance(message, str) else "the gateway reported an error",
                code if isinstance(code, str) and code else "STREAM_ERROR",
                raw_text=event.data,
            )
        elif name == "warning":
            data = _load(event, self._max_depth)
            self.warnings.append(
                StreamWarning(str(data.get("code", "")), str(data.get("message", "")))
            )
        elif name == "done":
            self.done_info = _load(event, self._max_depth)
            self.done = True
        else:
            return False
        return True

    def end_of_body(self) -> None:
        """The HTTP body ended. Raise if the stream did not end properly: its own ``error``
        event if one arrived, else ``STREAM_INCOMPLETE``."""
        if not self.done:
            if self.error is not None:
                raise self.error
            raise KoineError(
                "the stream ended before the gateway's 'done' event (connection dropped?)",
                "STREAM_INCOMPLETE",
            )

    @property
    def done_ok(self) -> bool:
        """``done`` arrived with code 0 (the CLI ended normally)."""
        return self.done and self.done_info is not None and self.done_info.get("code") == 0

    def check_result(self) -> None:
        """After ``done``: raise the stream's error; a ``done`` that reports a failure without
        an ``error`` event or a ``result`` raises ``STREAM_INCOMPLETE``."""
        if self.error is not None:
            raise self.error
        if not self.done_ok and (self.session_id is None or self.usage is None):
            code = self.done_info.get("code") if self.done_info is not None else None
            raise KoineError(
                f"the stream ended (done code {code!r}) without a 'result' event",
                "STREAM_INCOMPLETE",
            )

    def blank(self) -> StreamState:
        """A new state with the same settings, nothing received (to read a stream apart)."""
        raise NotImplementedError

    def feed(self, event: ServerSentEvent) -> Any | None:
        """Take one event; return the item it gives the user (``None``: none)."""
        raise NotImplementedError

    def final_answer(self) -> tuple[str, str | None] | None:
        """After the end of the body: the complete answer as the ledger keeps it (the text, or
        the object as JSON, and the model's JSON text), ``None`` when nothing was kept
        (``keep_text=False``); raises when the stream did not give a complete answer."""
        raise NotImplementedError

    def usage_or_raise(self) -> KoineUsage:
        """After the end: the usage of ``result`` (also after an ``error`` event: the tokens
        were spent), else the stream's error, else ``NO_USAGE``."""
        if self.usage is not None:
            return self.usage
        if self.error is not None:
            raise self.error
        raise KoineError(
            "the stream ended without a 'result' event, so its usage is unknown", "NO_USAGE"
        )

    def session_or_raise(self) -> str:
        """After the end: the resumable session id of ``result``, else the stream's error,
        else ``NO_SESSION``."""
        if self.session_id is not None:
            return self.session_id
        if self.error is not None:
            raise self.error
        raise KoineError(
            "the stream ended without a 'result' event, so it has no resumable session id",
            "NO_SESSION",
        )


class TextStreamState(StreamState):
    """``/stream``: ``text`` deltas accumulate into the answer (unless ``keep_text=False``:
    then nothing is kept, memory stays flat however long the stream, and :attr:`text` raises)."""

    __slots__ = ("_keep", "_max", "_parts", "_size")

    def __init__(
        self,
        keep_text: bool = True,
        max_answer: int | None = None,
        max_depth: int = DEFAULT_LIMITS.max_depth,
    ) -> None:
        super().__init__(max_depth)
        self._parts: list[str] = []
        self._keep = keep_text
        self._size = 0
        self._max = max_answer  # characters kept at most (RESPONSE_TOO_LARGE past it)

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
                check_depth(data, self._max_depth, "SSE_PARSE_ERROR", "a 'text' event")
                try:
                    text = json.loads(data)["text"]
                except (ValueError, KeyError, TypeError, RecursionError):
                    raise _shape_error(event, "a JSON text field") from None
            if not isinstance(text, str):
                raise _shape_error(event, "a string text field")
            if self._keep:
                self._size += len(text)
                if self._max is not None and self._size > self._max:
                    self._parts = []
                    raise too_large("answer", self._max, "characters")
                self._parts.append(text)
            return text
        self._common(event)
        return None

    def blank(self) -> TextStreamState:
        return TextStreamState(self._keep, self._max, self._max_depth)

    def final_answer(self) -> tuple[str, str | None] | None:
        self.end_of_body()
        self.check_result()
        return (self.text, None) if self._keep else None

    @property
    def keeps_text(self) -> bool:
        """Whether the text is kept (``keep_text=True``)."""
        return self._keep

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

    __slots__ = (
        "_builder",
        "_final",
        "_parser",
        "has_object",
        "object_data",
        "partial",
        "raw_text",
    )

    def __init__(self, parser: PartialParser[T], max_depth: int = DEFAULT_LIMITS.max_depth) -> None:
        super().__init__(max_depth)
        self._parser = parser
        self._final: tuple[T] | None = None  # the validated object, once validated
        self._builder = PartialBuilder(parser)
        self.raw_text: str = ""  # the JSON text accumulated so far (``partial``)
        self.partial: Any = None  # the latest partial view
        self.object_data: Any = None
        self.has_object: bool = False

    def _show(self, data: Any) -> Any | None:
        """The partial object for ``data``, or ``None`` when it equals the one shown last (no
        value is yielded twice in a row; unchanged parts are shared, so the comparison stops
        at them at once)."""
        partial = self._builder.parse(data)
        if partial is self.partial or (self.partial is not None and partial == self.partial):
            return None
        self.partial = partial
        return partial

    def feed(self, event: ServerSentEvent) -> Any | None:
        """Take one event; return a new partial object when it carries one, else ``None``."""
        if self.done:
            return None
        name = event.event
        if name == "partial-object":
            try:
                data = _load(event, self._max_depth)
            except KoineError:
                self.warnings.append(
                    StreamWarning(
                        "PARTIAL_OBJECT_SKIPPED",
                        "a partial-object event whose data is not a JSON object was skipped",
                    )
                )
                return None
            raw = data.get("partial")
            if isinstance(raw, str):
                self.raw_text = raw
            parsed = data.get("parsed")
            if parsed is None:
                return None  # nothing parsed yet
            return self._show(parsed)
        if name == "object":
            data = _load(event, self._max_depth)
            if "object" not in data:
                raise _shape_error(event, "an object field")
            self.object_data = data["object"]
            self.has_object = True
            shown = self._show(self.object_data)
            if shown is not None or not self.raw_text:
                self.raw_text = json.dumps(self.object_data, ensure_ascii=False)
            return shown
        self._common(event)
        return None

    def blank(self) -> ObjectStreamState[T]:
        return ObjectStreamState(self._parser, self._max_depth)

    def final_answer(self) -> tuple[str, str | None] | None:
        self.end_of_body()
        self.check_result()
        self.final_object()  # validated: an object that fails its schema is no answer
        return json.dumps(self.object_data, ensure_ascii=False), self.raw_text

    def final_object(self) -> T:
        """After ``done``: the object validated against the schema (or the stream's error;
        ``NO_OBJECT`` when the stream ended properly without an ``object`` event). A
        ``VALIDATION_ERROR`` carries the stream's usage (the tokens were spent)."""
        if self.error is not None:
            raise self.error
        if not self.has_object:
            raise KoineError(
                "the stream ended without an 'object' event: no final object", "NO_OBJECT"
            )
        if self._final is not None:
            return self._final[0]
        try:
            final = self._parser.validate_final(self.object_data, self.raw_text)
        except KoineError as exc:
            raise exc.replace(usage=self.usage) from exc.__cause__
        self._final = (final,)
        return final

    @property
    def parser(self) -> PartialParser[T]:
        """The schema's parser (validates the final object)."""
        return self._parser
