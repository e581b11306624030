"""The async client's stream results: one reader pulls the events of the call's reply (from the
wire or the ledger: ``_replay_layer`` decides) and feeds the state machine (``_streams``);
:class:`StreamTextResult` and :class:`StreamObjectResult` hand the items and the final answer
over. Public as ``koine_sdk.StreamTextResult`` / ``koine_sdk.StreamObjectResult``."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from ._sse import ServerSentEvent
from ._streams import ObjectStreamState, StreamState, StreamWarning, TextStreamState
from .errors import KoineError
from .types import KoineUsage, Source

if TYPE_CHECKING:
    from ._replay_layer import ReplayLayer, Reply
    from ._request import KoineRequest

__all__ = ["StreamObjectResult", "StreamTextResult"]

T = TypeVar("T")
S = TypeVar("S", bound=StreamState)


class _BaseStream(Generic[S]):
    """The shared machinery of both streams: one reader pulls events from the wire and feeds
    the state machine; items not yet taken by the user wait in ``_pending``."""

    def __init__(
        self,
        layer: ReplayLayer,
        request: KoineRequest,
        timeout: float | None,
        state: S,
    ) -> None:
        self._layer = layer
        self._request = request
        self._reply: Reply | None = None
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
        cm = self._layer.stream(self._request, self._state, timeout=self._timeout)
        reply = await cm.__aenter__()
        self._cm, self._reply, self._events = cm, reply, reply.events
        return self

    def _settle(self) -> None:
        """The stream ended (``_finished`` was just set): tell the reply, whose layer records
        a live stream's complete answer (or its paid failure)."""
        if self._reply is not None:
            self._reply.ended(self._failure)

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
        return self._reply.source if self._reply is not None else "live"

    @property
    def ledger_key(self) -> str | None:
        """The answer's key in the ledger: once it was replayed (on entry) or recorded (at its
        end); ``None`` otherwise."""
        return self._reply.ledger_key if self._reply is not None else None

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
