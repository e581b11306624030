"""The sync client's stream results: an async stream run on the client's loop thread, its items
handed to the calling thread through a queue. Public as ``koine_sdk.SyncStreamTextResult`` /
``koine_sdk.SyncStreamObjectResult``."""

from __future__ import annotations

import asyncio
import contextlib
import math
import queue
from collections.abc import Iterator
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from ._loop import LoopThread
from ._results import StreamObjectResult, StreamTextResult
from ._streams import StreamWarning
from .errors import KoineError
from .types import KoineUsage, Source

__all__ = ["SyncStreamObjectResult", "SyncStreamTextResult"]

T = TypeVar("T")

_POLL = 0.1  # seconds between checks while waiting for a stream item

_END = object()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


A = TypeVar("A", StreamTextResult, StreamObjectResult[Any])


class _SyncStream(Generic[A]):
    """Runs an async stream on the loop thread; a producer task hands items over through a
    thread-safe queue, so the calling thread pays one queue hand-off per item, not a loop
    round-trip."""

    def __init__(self, owner: object, runner: LoopThread, astream: A) -> None:
        self._owner = owner  # keeps the client (and its loop) alive while the stream is used
        self._runner = runner
        self._astream = astream
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._producer: asyncio.Task[None] | None = None
        self._iterated = False
        self._entered = False

    def __enter__(self) -> Self:
        self._runner.run(self._astream.__aenter__())
        self._entered = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the stream and close its connection (if it did not end already)."""
        if self._runner.closed:
            return  # the client's close() already stopped it
        self._runner.run(self._close())

    def _require_entered(self) -> None:
        if not self._entered:
            raise KoineError(
                "use the stream inside 'with' (the request is sent on entry): "
                "with koine.stream_text(prompt=...) as r: ...",
                "INVALID_ARGUMENT",
            )

    def _run(self, coro: Any) -> Any:
        try:
            self._require_entered()
        except KoineError:
            coro.close()
            raise
        return self._runner.run(coro)

    async def _close(self) -> None:
        task = self._producer
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self._astream.aclose()

    def _source(self) -> Any:
        raise NotImplementedError

    async def _spawn(self) -> None:
        self._producer = asyncio.get_running_loop().create_task(self._produce())

    async def _produce(self) -> None:
        put = self._queue.put
        try:
            async for item in self._source():
                put(item)
        except BaseException as exc:
            put(_Failure(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            put(_END)

    def _iter(self, heartbeat: float | None = None) -> Iterator[Any]:
        self._require_entered()
        if heartbeat is not None and (
            isinstance(heartbeat, bool)
            or not isinstance(heartbeat, int | float)  # pyright: ignore[reportUnnecessaryIsInstance]
            or not math.isfinite(heartbeat)
            or heartbeat <= 0
        ):
            raise KoineError(
                f"iter_with_heartbeat needs a positive number of seconds (got {heartbeat!r})",
                "INVALID_ARGUMENT",
            )
        if self._iterated:
            raise KoineError("a stream can be iterated once", "INVALID_ARGUMENT")
        self._iterated = True
        return self._items(heartbeat)

    def _items(self, heartbeat: float | None) -> Iterator[Any]:
        self._runner.run(self._spawn())
        get = self._queue.get
        empty = queue.Empty
        wait = _POLL if heartbeat is None else heartbeat
        while True:
            try:
                item = get(timeout=wait)
            except empty:
                if self._runner.closed and self._queue.empty():
                    producer = self._producer
                    if producer is None or producer.done():
                        raise KoineError(
                            "the client was closed during the stream", "CLIENT_CLOSED"
                        ) from None
                if heartbeat is not None:
                    yield None
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                if isinstance(item.exc, asyncio.CancelledError):
                    if self._runner.closed:
                        raise KoineError("the client was closed during the stream", "CLIENT_CLOSED")
                    raise KoineError("the stream was cancelled", "STREAM_INCOMPLETE")
                raise item.exc
            yield item

    def usage(self) -> KoineUsage:
        """See :meth:`StreamTextResult.usage`."""
        return self._run(self._astream.usage())

    def session_id(self) -> str:
        """See :meth:`StreamTextResult.session_id`."""
        return self._run(self._astream.session_id())

    @property
    def provisional_session_id(self) -> str | None:
        return self._astream.provisional_session_id

    @property
    def source(self) -> Source:
        """``"replay"`` when the ledger answers this stream (see
        :attr:`StreamTextResult.source`)."""
        return self._astream.source

    @property
    def ledger_key(self) -> str | None:
        """The answer's key in the ledger (see :attr:`StreamTextResult.ledger_key`)."""
        return self._astream.ledger_key

    @property
    def warnings(self) -> list[StreamWarning]:
        return self._astream.warnings

    @property
    def finished(self) -> bool:
        return self._astream.finished


class SyncStreamTextResult(_SyncStream[StreamTextResult]):
    """A text stream in progress (see :meth:`SyncKoineClient.stream_text`)."""

    def _source(self) -> Any:
        return self._astream.text_stream

    @property
    def text_stream(self) -> Iterator[str]:
        """The text deltas as they arrive."""
        return self._iter()

    @property
    def received_text(self) -> str:
        return self._astream.received_text

    def iter_with_heartbeat(self, seconds: float) -> Iterator[str | None]:
        """Like :attr:`text_stream`, but yields ``None`` whenever nothing arrived for
        ``seconds``: for a view that refreshes a clock while the model thinks."""
        return self._iter(heartbeat=seconds)

    def text(self) -> str:
        """The full text (reads the rest of the stream if needed)."""
        return self._run(self._astream.text())


class SyncStreamObjectResult(_SyncStream[StreamObjectResult[Any]], Generic[T]):
    """An object stream in progress (see :meth:`SyncKoineClient.stream_object`)."""

    def _source(self) -> Any:
        return self._astream.partial_object_stream

    @property
    def partial_object_stream(self) -> Iterator[Any]:
        """Partial views of the schema as the JSON arrives (see
        :attr:`StreamObjectResult.partial_object_stream`: the final object may come last;
        partials share unchanged parts)."""
        return self._iter()

    @property
    def latest_partial(self) -> Any:
        return self._astream.latest_partial

    def iter_with_heartbeat(self, seconds: float) -> Iterator[Any | None]:
        """Like :attr:`partial_object_stream`, but yields ``None`` whenever nothing arrived for
        ``seconds``."""
        return self._iter(heartbeat=seconds)

    @property
    def raw_text(self) -> str:
        return self._astream.raw_text

    def object(self) -> T:
        """The final object, validated against the schema (see
        :meth:`StreamObjectResult.object`)."""
        return self._run(self._astream.object())
