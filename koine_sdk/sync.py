"""The sync client: the async client driven on a private event loop in a background thread.

Why a loop thread and not ``nest_asyncio``: it works the same in a plain script, inside a
running loop (a Jupyter cell, IPython autoawait, a coroutine calling sync library code), under
uvloop and from several threads at once, and it never patches the caller's loop. There is one
implementation of the protocol: every method here runs the async client's coroutine.

Ctrl-C (Kernel > Interrupt) while a call waits cancels the coroutine on the loop thread, which
closes the HTTP connection (the gateway then stops its CLI), and raises ``KeyboardInterrupt``;
the client stays usable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import queue
import threading
from collections.abc import Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

import httpx

from ._config import KoineConfig
from ._streams import StreamWarning
from .client import KoineClient, StreamObjectResult, StreamTextResult
from .errors import KoineError
from .types import GenerateObjectResult, GenerateTextResult, HealthStatus, KoineUsage

__all__ = [
    "LoopThread",
    "SyncKoineClient",
    "SyncStreamObjectResult",
    "SyncStreamTextResult",
    "create_koine_sync",
]

T = TypeVar("T")
R = TypeVar("R")

_POLL = 0.1  # seconds between checks for Ctrl-C while waiting (signals interrupt anyway)
_CANCEL_GRACE = 2.0  # seconds to let a cancelled call close its connection


class LoopThread:
    """A private event loop on a daemon thread, started on first use.

    ``run(coro)`` runs a coroutine there and waits for it from any other thread; Ctrl-C while
    waiting cancels the coroutine (giving it up to two seconds to close its connections) and
    re-raises ``KeyboardInterrupt``. The caller's context variables travel with the work.
    Used by the sync client and by ``koine_jupyter``'s sync ``extract``.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=main, name=self._name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run ``coro`` on the loop thread and wait for it; Ctrl-C cancels it."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise KoineError(
                "the sync client was called from its own loop thread", "INVALID_ARGUMENT"
            )
        loop = self.loop()
        result: concurrent.futures.Future[R] = concurrent.futures.Future()
        finished = threading.Event()
        holder: list[asyncio.Task[R]] = []

        def on_done(task: asyncio.Task[R]) -> None:
            if task.cancelled():
                result.cancel()
            elif (exc := task.exception()) is not None:
                result.set_exception(exc)
            else:
                result.set_result(task.result())
            finished.set()

        # The caller's context variables go with the work: in a Jupyter kernel they hold the
        # executing cell's parent header, so output made on the loop thread lands in that cell.
        context = contextvars.copy_context()

        def start() -> None:
            task = loop.create_task(coro, context=context)
            holder.append(task)
            task.add_done_callback(on_done)

        loop.call_soon_threadsafe(start)
        try:
            while True:
                try:
                    return result.result(timeout=_POLL)
                except concurrent.futures.TimeoutError:
                    continue
        except BaseException:
            if not finished.is_set():

                def cancel() -> None:
                    if holder:
                        holder[0].cancel()

                loop.call_soon_threadsafe(cancel)
                finished.wait(_CANCEL_GRACE)
            raise

    def close(self, final: Coroutine[Any, Any, Any] | None = None) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            if final is not None:
                final.close()
            return
        if final is not None:
            try:
                asyncio.run_coroutine_threadsafe(final, loop).result(timeout=5)
            except Exception:
                pass
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


class SyncKoineClient:
    """Synchronous client with the async client's methods and arguments.

    Make it with :func:`create_koine_sync`. Close with ``koine.close()`` or use it as a context
    manager. Thread-safe: several threads may call it at once.
    """

    def __init__(self, config: KoineConfig, *, max_retries: int = 0) -> None:
        self._async = KoineClient(config, max_retries=max_retries)
        self.config = self._async.config
        self._runner = LoopThread(name="koine-sdk-loop")

    def __repr__(self) -> str:
        return f"SyncKoineClient(base_url={self.config.base_url!r}, model={self.config.model!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool and stop the loop thread."""
        self._runner.close(self._async.aclose())

    @property
    def loop_thread(self) -> LoopThread:
        """The private loop this client's async client runs on."""
        return self._runner

    @property
    def async_client(self) -> KoineClient:
        """The async client underneath (use it only on this client's loop)."""
        return self._async

    def generate_text(
        self,
        *,
        prompt: str,
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> GenerateTextResult:
        """See :meth:`KoineClient.generate_text`."""
        return self._runner.run(
            self._async.generate_text(
                prompt=prompt,
                system=system,
                session_id=session_id,
                allowed_tools=allowed_tools,
                model=model,
                timeout=timeout,
            )
        )

    def generate_object(
        self,
        *,
        prompt: str,
        schema: type[T],
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> GenerateObjectResult[T]:
        """See :meth:`KoineClient.generate_object`."""
        return self._runner.run(
            self._async.generate_object(
                prompt=prompt,
                schema=schema,
                system=system,
                session_id=session_id,
                allowed_tools=allowed_tools,
                model=model,
                timeout=timeout,
            )
        )

    def stream_text(
        self,
        *,
        prompt: str,
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
        keep_text: bool = True,
    ) -> SyncStreamTextResult:
        """``with koine.stream_text(prompt=...) as r: for chunk in r.text_stream: ...``
        (``keep_text=False``: see :meth:`KoineClient.stream_text`)."""
        astream = self._async.stream_text(
            prompt=prompt,
            system=system,
            session_id=session_id,
            allowed_tools=allowed_tools,
            model=model,
            timeout=timeout,
            keep_text=keep_text,
        )
        return SyncStreamTextResult(self._runner, astream)

    def stream_object(
        self,
        *,
        prompt: str,
        schema: type[T],
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
    ) -> SyncStreamObjectResult[T]:
        """``with koine.stream_object(prompt=..., schema=M) as r:
        for partial in r.partial_object_stream: ...``"""
        astream = self._async.stream_object(
            prompt=prompt,
            schema=schema,
            system=system,
            session_id=session_id,
            allowed_tools=allowed_tools,
            model=model,
            timeout=timeout,
        )
        return SyncStreamObjectResult(self._runner, astream)

    def health(self, *, timeout: float | None = None) -> HealthStatus:
        """See :meth:`KoineClient.health`."""
        return self._runner.run(self._async.health(timeout=timeout))


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

    def __init__(self, runner: LoopThread, astream: A) -> None:
        self._runner = runner
        self._astream = astream
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._producer: asyncio.Task[None] | None = None
        self._iterated = False

    def __enter__(self) -> Self:
        self._runner.run(self._astream.__aenter__())
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
        self._runner.run(self._close())

    async def _close(self) -> None:
        task = self._producer
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self._astream.aclose()

    async def _spawn(self) -> None:
        self._producer = asyncio.get_running_loop().create_task(self._produce())

    async def _produce(self) -> None:
        put = self._queue.put
        try:
            async for item in self._astream._items():  # pyright: ignore[reportPrivateUsage]
                put(item)
        except BaseException as exc:
            put(_Failure(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            put(_END)

    def _iter(self, heartbeat: float | None = None) -> Iterator[Any]:
        if self._iterated:
            raise KoineError("a stream can be iterated once", "INVALID_ARGUMENT")
        self._iterated = True
        self._runner.run(self._spawn())
        get = self._queue.get
        empty = queue.Empty
        wait = _POLL if heartbeat is None else heartbeat
        while True:
            try:
                item = get(timeout=wait)
            except empty:
                if heartbeat is not None:
                    yield None
                continue
            if item is _END:
                return
            if isinstance(item, _Failure):
                if isinstance(item.exc, asyncio.CancelledError):
                    raise KoineError("the stream was cancelled", "STREAM_INCOMPLETE")
                raise item.exc
            yield item

    def usage(self) -> KoineUsage:
        return self._runner.run(self._astream.usage())

    def session_id(self) -> str:
        return self._runner.run(self._astream.session_id())

    @property
    def provisional_session_id(self) -> str | None:
        return self._astream.provisional_session_id

    @property
    def warnings(self) -> list[StreamWarning]:
        return self._astream.warnings

    @property
    def finished(self) -> bool:
        return self._astream.finished


class SyncStreamTextResult(_SyncStream[StreamTextResult]):
    """A text stream in progress (see :meth:`SyncKoineClient.stream_text`)."""

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
        return self._runner.run(self._astream.text())


class SyncStreamObjectResult(_SyncStream[StreamObjectResult[Any]], Generic[T]):
    """An object stream in progress (see :meth:`SyncKoineClient.stream_object`)."""

    @property
    def partial_object_stream(self) -> Iterator[Any]:
        """Partial views of the schema as the JSON arrives."""
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
        """The final object, validated against the schema."""
        return self._runner.run(self._astream.object())


def create_koine_sync(
    config: KoineConfig | None = None,
    /,
    *,
    base_url: str | None = None,
    auth_key: str | None = None,
    timeout: float | None = None,
    model: str | None = None,
    max_retries: int = 0,
) -> SyncKoineClient:
    """Create a sync client; arguments and environment fallback as :func:`create_koine`."""
    if config is None:
        config = KoineConfig.from_env(
            base_url=base_url, auth_key=auth_key, timeout=timeout, model=model
        )
    elif any(v is not None for v in (base_url, auth_key, timeout, model)):
        raise KoineError(
            "pass either a KoineConfig or keyword settings, not both", "INVALID_CONFIG"
        )
    return SyncKoineClient(config, max_retries=max_retries)


del httpx
