"""The sync client: the async client driven on a private event loop in a background thread
(a :class:`LoopThread`).

Why a loop thread and not ``nest_asyncio``: it works the same in a plain script, inside a
running loop (a Jupyter cell, IPython autoawait, a coroutine calling sync library code), under
uvloop and from several threads at once, and it never patches the caller's loop. There is one
implementation of the protocol: every method here runs the async client's coroutine.

Ctrl-C (Kernel > Interrupt) while a call waits cancels the coroutine on the loop thread, which
closes the HTTP connection, and raises ``KeyboardInterrupt``; the client stays usable. (The
gateway stops a stream's CLI when its connection closes; a ``generate_*`` call's CLI runs to its
end on the real gateway, only its slot is freed.)

Life cycle: ``close()`` (or ``with``) cancels calls still running in other threads (they raise
``CLIENT_CLOSED``), closes the connections and stops the thread; a client dropped without
``close()`` is closed by the garbage collector. After ``os.fork`` a client made in the parent
works in the child (a fresh thread and connection pool); it can also be pickled (a new client
with the same configuration is made on unpickling).

For code built on the SDK (the Jupyter extension): :meth:`SyncKoineClient.run` /
:meth:`SyncKoineClient.arun` run a coroutine function of the async client on this client's loop,
and :meth:`SyncKoineClient.loop` returns that loop.
"""

from __future__ import annotations

import asyncio
import warnings
import weakref
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from ._config import KoineConfig, shown_url
from ._loop import LoopThread
from ._sync_results import SyncStreamObjectResult, SyncStreamTextResult
from .client import KoineClient
from .errors import KoineError
from .types import GenerateObjectResult, GenerateTextResult, HealthStatus

if TYPE_CHECKING:
    from ._replay import ReplayMode
    from .ledger import Ledger, LedgerSpec

__all__ = [
    "LoopThread",
    "SyncKoineClient",
    "SyncStreamObjectResult",
    "SyncStreamTextResult",
    "create_koine_sync",
]

T = TypeVar("T")
R = TypeVar("R")


def _shut_down(runner: LoopThread, client: KoineClient) -> None:
    """Close ``client``'s pool on ``runner``'s loop and stop it (also as the GC finalizer)."""
    runner.close(client.aclose())


def _unpickle(
    config: KoineConfig, max_retries: int, replay: str = "off", ledger: Any = None
) -> SyncKoineClient:
    return SyncKoineClient(config, max_retries=max_retries, replay=replay, ledger=ledger)


class SyncKoineClient:
    """Synchronous client with the async client's methods and arguments.

    Make it with :func:`create_koine_sync`. Close with ``koine.close()`` or use it as a context
    manager (a client dropped without closing is closed when garbage-collected). Thread-safe:
    several threads may call it at once. Fork-safe, and picklable (the copy is a new client with
    the same configuration).
    """

    def __init__(
        self,
        config: KoineConfig,
        *,
        max_retries: int = 0,
        replay: ReplayMode | str | None = None,
        record: bool = True,
        ledger: LedgerSpec = None,
    ) -> None:
        self._async = KoineClient(config, max_retries=max_retries, replay=replay, ledger=ledger)
        self.config = self._async.config
        self._runner = LoopThread(name="koine-sdk-loop")
        self._closed = False
        # Holds the runner and the async client, never ``self``: the client can be collected.
        self._finalizer = weakref.finalize(self, _shut_down, self._runner, self._async)

    def __repr__(self) -> str:
        # Never raises, even for a client whose __init__ failed half-way (verbose tracebacks
        # call repr on it): nothing but the class name is taken for granted.
        config = getattr(self, "config", None)
        if config is None:
            return "SyncKoineClient(<not configured>)"
        replay = getattr(self, "replay", "off")
        shown = f", replay={replay!r}" if replay != "off" else ""
        url = shown_url(getattr(config, "base_url", None))
        return f"SyncKoineClient(base_url={url!r}, model={getattr(config, 'model', None)!r}{shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        ledger = self.ledger
        # A ledger file travels by its path; an in-memory one cannot (the copy gets its own).
        where: Any = None if ledger is None else (ledger.path or False)
        return (_unpickle, (self.config, self._async.max_retries, self.replay, where))

    @property
    def replay(self) -> ReplayMode:
        """See :attr:`KoineClient.replay`."""
        return self._async.replay

    @property
    def ledger(self) -> Ledger | None:
        """See :attr:`KoineClient.ledger`."""
        return self._async.ledger

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
        """Close the connection pool and stop the loop thread. Calls still running in other
        threads raise ``CLIENT_CLOSED``; so does every later call (without starting a
        thread)."""
        self._closed = True
        self._finalizer()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise KoineError("this client is closed", "CLIENT_CLOSED")

    # -- the seam for code built on the SDK ---------------------------------------------------

    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this client's work runs on (its thread starts on first use; after
        ``os.fork``, a fresh one in the child). ``CLIENT_CLOSED`` once closed."""
        self._check_open()
        return self._runner.loop()

    def run(self, fn: Callable[[KoineClient], Awaitable[R]], /) -> R:
        """Run ``fn(async_client)`` on this client's loop and wait for the result, from any
        thread but the loop's own: the way to use the async API (or any coroutine that must
        share this client's connections) from sync code. Ctrl-C while waiting cancels it;
        :meth:`close` makes it raise ``CLIENT_CLOSED``. The caller's context variables go
        with the work.

        ``koine.run(lambda k: k.generate_text(prompt="hi"))``
        """
        self._check_open()
        return self._runner.run(_call(fn, self._async))

    async def arun(self, fn: Callable[[KoineClient], Awaitable[R]], /) -> R:
        """``await fn(async_client)`` from any event loop: it runs on this client's loop
        (directly when awaited there). Cancelling the await cancels the work there."""
        self._check_open()
        loop = self._runner.loop()
        if asyncio.get_running_loop() is loop:
            return await fn(self._async)
        return await asyncio.wrap_future(self._runner.submit(_call(fn, self._async)))

    @property
    def loop_thread(self) -> LoopThread:
        """Deprecated: use :meth:`loop`, :meth:`run` and :meth:`arun`."""
        warnings.warn(
            "SyncKoineClient.loop_thread is deprecated: use loop(), run() and arun()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._runner

    @property
    def async_client(self) -> KoineClient:
        """Deprecated: use :meth:`run` / :meth:`arun`, which hand you the async client on the
        loop where it may be used."""
        warnings.warn(
            "SyncKoineClient.async_client is deprecated: use run() or arun()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._async

    # -- the API -------------------------------------------------------------------------------

    def generate_text(
        self,
        *,
        prompt: str,
        system: str | None = None,
        session_id: str | None = None,
        allowed_tools: Sequence[str] | None = None,
        model: str | None = None,
        timeout: float | None = None,
        replay: ReplayMode | str | None = None,
        record: bool = True,
    ) -> GenerateTextResult:
        """See :meth:`KoineClient.generate_text`."""
        self._check_open()
        return self._runner.run(
            self._async.generate_text(
                prompt=prompt,
                system=system,
                session_id=session_id,
                allowed_tools=allowed_tools,
                model=model,
                timeout=timeout,
                replay=replay,
                record=record,
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
        repairs: int = 0,
        replay: ReplayMode | str | None = None,
        record: bool = True,
    ) -> GenerateObjectResult[T]:
        """See :meth:`KoineClient.generate_object` (``repairs=`` included)."""
        self._check_open()
        return self._runner.run(
            self._async.generate_object(
                prompt=prompt,
                schema=schema,
                system=system,
                session_id=session_id,
                allowed_tools=allowed_tools,
                model=model,
                timeout=timeout,
                repairs=repairs,
                replay=replay,
                record=record,
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
        replay: ReplayMode | str | None = None,
        record: bool = True,
    ) -> SyncStreamTextResult:
        """``with koine.stream_text(prompt=...) as r: for chunk in r.text_stream: ...``
        (``keep_text=False``: see :meth:`KoineClient.stream_text`)."""
        self._check_open()
        astream = self._async.stream_text(
            prompt=prompt,
            system=system,
            session_id=session_id,
            allowed_tools=allowed_tools,
            model=model,
            timeout=timeout,
            keep_text=keep_text,
            replay=replay,
            record=record,
        )
        return SyncStreamTextResult(self, self._runner, astream)

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
        replay: ReplayMode | str | None = None,
        record: bool = True,
    ) -> SyncStreamObjectResult[T]:
        """``with koine.stream_object(prompt=..., schema=M) as r:
        for partial in r.partial_object_stream: ...`` (see :meth:`KoineClient.stream_object`)."""
        self._check_open()
        astream = self._async.stream_object(
            prompt=prompt,
            schema=schema,
            system=system,
            session_id=session_id,
            allowed_tools=allowed_tools,
            model=model,
            timeout=timeout,
            replay=replay,
            record=record,
        )
        return SyncStreamObjectResult(self, self._runner, astream)

    def health(self, *, timeout: float | None = None) -> HealthStatus:
        """See :meth:`KoineClient.health`."""
        self._check_open()
        return self._runner.run(self._async.health(timeout=timeout))


async def _call(fn: Callable[[KoineClient], Awaitable[R]], client: KoineClient) -> R:
    return await fn(client)


def create_koine_sync(
    config: KoineConfig | None = None,
    /,
    *,
    base_url: str | None = None,
    auth_key: str | None = None,
    timeout: float | None = None,
    model: str | None = None,
    max_retries: int = 0,
    replay: ReplayMode | str | None = None,
    ledger: LedgerSpec = None,
) -> SyncKoineClient:
    """Create a sync client; arguments and environment fallback as :func:`create_koine`
    (``replay=`` and ``ledger=`` included)."""
    if config is None:
        config = KoineConfig.from_env(
            base_url=base_url, auth_key=auth_key, timeout=timeout, model=model
        )
    elif not isinstance(config, KoineConfig):  # pyright: ignore[reportUnnecessaryIsInstance]
        raise KoineError(
            f"create_koine_sync takes a KoineConfig (got {type(config).__name__})",
            "INVALID_CONFIG",
        )
    elif any(v is not None for v in (base_url, auth_key, timeout, model)):
        raise KoineError(
            "pass either a KoineConfig or keyword settings, not both", "INVALID_CONFIG"
        )
    return SyncKoineClient(config, max_retries=max_retries, replay=replay, ledger=ledger)
