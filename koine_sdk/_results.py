"""The async client's stream results: one reader pulls events from the wire (``_transport``) and
feeds the state machine (``_streams``); :class:`StreamTextResult` and
:class:`StreamObjectResult` hand the items and the final answer over. Public as
``koine_sdk.StreamTextResult`` / ``koine_sdk.StreamObjectResult``."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from ._sse import ServerSentEvent
from ._streams import ObjectStreamState, StreamState, StreamWarning, TextStreamState
from ._transport import Transport
from .errors import KoineError
from .types import KoineUsage, Source

if TYPE_CHECKING:
    from ._replay import Recording, Replayer

__all__ = ["StreamObjectResult", "StreamTextResult"]

T = TypeVar("T")
S = TypeVar("S", bound=StreamState)


class _BaseStream(Generic[S]):
    """The shared machinery of both streams: one reader pulls events from the wire and feeds
    the state machine; items not yet taken by the user wait in ``_pending``."""

    def __init__(
        self,
        transport: Transport,
        path: str,
        body: bytes,
        timeout: float | None,
        state: S,
        replay: Replayer | None = None,
    ) -> None:
        self._transport = transport
        self._replay = replay
        self._started: float | None = None
        self._source: Source = "live"
        self._ledger_key: str | None = None
        self._path = path
        self._body = body
        self._timeout = timeout
        self._state = state
        self._pending: deque[Any] = deque()
        self._cm: Any = None
        self._events: AsyncIterator[list[ServerSentEvent]] | None = None
        self._finished = False
        self._failure: KoineError | None = None
        self._lock = asyncio.Lock()
        self._entered = False

    async def __aenter__(self) -> Self:
        if self._entered:
            raise KoineError("a stream can be entered once", "INVALID_ARGUMENT")
        self._entered = True
        recording = self._replay.find(self._path, self._body) if self._replay else None
        if recording is not None and self._replay is not None:
            why = self._unusable(recording)
            if why:
                self._replay.unusable(self._path, self._body, why)
                recording = None
        if recording is not None:
            cm: Any = recording.stream_events(self._path)
            self._source, self._ledger_key = "replay", recording.key
        else:
            self._started = time.time()
            cm = self._transport.stream_events(self._path, self._body, timeout=self._timeout)
        self._events = await cm.__aenter__()
        self._cm = cm
        return self

    def _unusable(self, recording: Recording) -> str:
        """Why ``recording`` cannot answer this stream ("" when it can)."""
        return ""

    def _answer(self) -> tuple[str, str | None] | None:
        """After a proper end: the answer to record (answer, raw text), ``None`` for none;
        raises the stream's error when it did not succeed."""
        raise NotImplementedError

    def _settle(self) -> None:
        """The stream ended (``_finished`` was just set): write a live stream's complete answer
        to the ledger, or a failure that was paid for; never an incomplete answer."""
        replay = self._replay
        if replay is None or not replay.records or self._source == "replay":
            return
        failure = self._failure
        if failure is None:
            try:
                answer = self._answer()
            except KoineError as exc:
                failure = exc
            else:
                if answer is not None:
                    self._ledger_key = replay.record_answer(
                        self._path,
                        self._body,
                        answer=answer[0],
                        raw_text=answer[1],
                        usage=self._state.usage,
                        session_id=self._state.session_id,
                        started=self._started,
                    )
                return
        replay.record_failure(
            self._path, self._body, failure, started=self._started, usage=self._state.usage
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the stream: the connection is closed at once unless it was read to its end
        (closing early is how the gateway learns to stop its CLI)."""
        cm, self._cm = self._cm, None
        if cm is not None:
            events = self._events
            self._events = None
            if events is not None:
                try:
                    await events.aclose()  # type: ignore[attr-defined]
                except RuntimeError:
                    pass  # being iterated by another task: closing the response stops it
            await cm.__aexit__(None, None, None)
        if not self._finished:
            self._finished = True
            if self._failure is None:
                self._failure = KoineError(
                    "the stream was closed before it ended", "STREAM_INCOMPLETE"
                )

    def _feed(self, event: ServerSentEvent) -> Any | None:
        raise NotImplementedError

    async def _pump(self) -> None:
        """Read the events of one network read (or the end of the body) and update state; never
        called after the stream finished."""
        async with self._lock:
            if self._finished:
                return
            if self._events is None:
                raise KoineError(
                    "use the stream inside 'async with' (the request is sent on entry)",
                    "INVALID_ARGUMENT",
                )
            try:
                events = await self._events.__anext__()
            except StopAsyncIteration:
                self._finished = True
                try:
                    self._state.end_of_body()
                except KoineError as exc:
                    self._failure = exc
                self._settle()
                await self.aclose()
                return
            except KoineError as exc:
                self._finished = True
                # A connection that broke after the stream's own error event: that error is
                # the cause to report.
                error = self._state.error
                self._failure = error if error and exc.code == "STREAM_INCOMPLETE" else exc
                self._settle()
                await self.aclose()
                return
            feed, append = self._feed, self._pending.append
            try:
                for event in events:
                    item = feed(event)
                    if item is not None:
                        append(item)
            except KoineError as exc:
                self._finished = True
                self._failure = exc
                self._settle()
                await self.aclose()
                return

    async def _items(self) -> AsyncIterator[Any]:
        while True:
            if self._pending:
                yield self._pending.popleft()
                continue
            if self._finished:
                if self._failure is not None:
                    raise self._failure
                self._check_end()
                return
            await self._pump()

    def _check_end(self) -> None:
        """After the stream ended: raise the stream's error, if any (text/partials stay)."""
        self._state.check_result()

    async def _until_finished(self) -> None:
        while not self._finished:
            await self._pump()
        if self._failure is not None:
            raise self._failure

    async def usage(self) -> KoineUsage:
        """Token usage, from the ``result`` event (waits for the end of the stream). Known also
        when the stream then failed (the tokens were spent); a stream that ended properly
        without ``result`` raises ``NO_USAGE``."""
        while not self._finished:
            await self._pump()
        if self._state.usage is not None:
            return self._state.usage
        if self._failure is not None:
            raise self._failure
        return self._state.usage_or_raise()

    async def session_id(self) -> str:
        """The id to resume this conversation with (waits for the ``result`` event: on a new
        conversation only that id is resumable; see :attr:`provisional_session_id`). A stream
        that ended properly without ``result`` raises ``NO_SESSION``."""
        while self._state.session_id is None and not self._finished:
            await self._pump()
        if self._state.session_id is not None:
            return self._state.session_id
        if self._failure is not None:
            raise self._failure
        return self._state.session_or_raise()

    @property
    def source(self) -> Source:
        """``"replay"`` when the ledger answers this stream (``replay=`` of the client: nothing
        is sent; known once the stream is entered), else ``"live"``."""
        return self._source

    @property
    def ledger_key(self) -> str | None:
        """The answer's key in the ledger: once it was replayed (on entry) or recorded (at its
        end); ``None`` otherwise."""
        return self._ledger_key

    @property
    def provisional_session_id(self) -> str | None:
        """The ``session`` event's id, known early. On a new conversation it is NOT the
        resumable id; use ``await r.session_id()`` for the next turn."""
        return self._state.provisional_session_id

    @property
    def warnings(self) -> list[StreamWarning]:
        """``warning`` events received so far."""
        return list(self._state.warnings)

    @property
    def finished(self) -> bool:
        return self._finished


class StreamTextResult(_BaseStream[TextStreamState]):
    """A text stream in progress (see :meth:`KoineClient.stream_text`)."""

    def _feed(self, event: ServerSentEvent) -> str | None:
        return self._state.feed(event)

    def _answer(self) -> tuple[str, str | None] | None:
        self._state.check_result()
        if not self._state.keeps_text:
            return None  # keep_text=False holds nothing to record (memory stays flat)
        return self._state.text, None

    @property
    def text_stream(self) -> AsyncIterator[str]:
        """The text deltas, as they arrive. Raises ``KoineError`` if the stream fails (the
        text received until then stays in :attr:`received_text`)."""
        return self._items()

    @property
    def received_text(self) -> str:
        """All text received so far (also after a failure)."""
        return self._state.text

    async def text(self) -> str:
        """The full text (reads the rest of the stream if it was not consumed)."""
        await self._until_finished()
        self._check_end()
        return self._state.text


class StreamObjectResult(_BaseStream[ObjectStreamState[T]], Generic[T]):
    """An object stream in progress (see :meth:`KoineClient.stream_object`)."""

    def _feed(self, event: ServerSentEvent) -> Any | None:
        return self._state.feed(event)

    def _unusable(self, recording: Recording) -> str:
        return (
            ""
            if recording.fits(self._state.parser)
            else "the recorded answer no longer fits the schema"
        )

    def _answer(self) -> tuple[str, str | None] | None:
        self._state.check_result()
        self._state.final_object()  # validated: an object that fails its schema is no answer
        return json.dumps(self._state.object_data, ensure_ascii=False), self._state.raw_text

    @property
    def partial_object_stream(self) -> AsyncIterator[Any]:
        """Partial objects as the JSON arrives: each is an instance of the schema's partial
        view (every field optional). Incomplete data never raises here; the stream's own
        error does, after the partials received before it.

        The last item may be the final object itself (as a partial view), when it differs from
        the last partial: a view that shows the latest item ends on the whole answer.
        Consecutive partials share the parts that did not change (earlier list items, finished
        fields): treat them as read-only."""
        return self._items()

    @property
    def latest_partial(self) -> Any:
        """The newest partial object received (``None`` before the first)."""
        return self._state.partial

    @property
    def raw_text(self) -> str:
        """The JSON text received so far."""
        return self._state.raw_text

    async def object(self) -> T:
        """The final object, validated against the schema (``VALIDATION_ERROR`` with the raw
        JSON in ``raw_text`` and the stream's ``usage`` when it does not match; ``NO_OBJECT``
        when the stream ended properly without an ``object`` event)."""
        await self._until_finished()
        return self._state.final_object()
