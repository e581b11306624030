""":class:`LoopThread`: a private event loop on a daemon thread, for running async code from sync
code — a plain script, a thread, or inside a running loop (a Jupyter cell) — without patching
anyone's loop. The sync client runs on one; so may any code that has no sync client (public as
``koine_sdk.LoopThread``).

Fork-safe: after ``os.fork`` the child starts its own thread and loop on first use. The
parent's loop is never touched in the child (its epoll instance is shared with the parent:
closing it there would unregister the parent's file descriptors), only kept from the garbage
collector.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
import weakref
from collections.abc import Coroutine
from typing import Any, TypeVar

from .errors import KoineError

__all__ = ["LoopThread"]

R = TypeVar("R")

_POLL = 0.1  # seconds between checks for Ctrl-C while waiting (signals interrupt anyway)
_CANCEL_GRACE = 2.0  # seconds to let cancelled work close its connections
_CLOSE_TIMEOUT = 5.0  # seconds close() waits for the last coroutine and the thread

_instances: weakref.WeakSet[LoopThread] = weakref.WeakSet()
# What a forked child inherits from its parent's loops: kept, never used or closed (see above).
_inherited: list[Any] = []


def _closed_error() -> KoineError:
    return KoineError("this client is closed", "CLIENT_CLOSED")


class _Call:
    """One coroutine submitted to the loop: ``future`` for its outcome (cancel it to cancel the
    coroutine), ``ended`` set once its task is over (also after a cancellation)."""

    __slots__ = ("ended", "future")

    def __init__(self) -> None:
        self.future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.ended = threading.Event()


class LoopThread:
    """A private event loop on a daemon thread, started on first use.

    - :meth:`run` runs a coroutine there and waits for it, from any other thread; Ctrl-C while
      waiting cancels the coroutine (giving it up to two seconds to close its connections) and
      re-raises ``KeyboardInterrupt``.
    - :meth:`submit` starts a coroutine there and returns a ``concurrent.futures.Future``
      (cancelling the future cancels the coroutine); ``await asyncio.wrap_future(...)`` it from
      another loop.
    - The caller's context variables travel with the work (in a Jupyter kernel they route
      output to the calling cell).
    - :meth:`close` cancels what still runs (those calls raise ``CLIENT_CLOSED``), runs a last
      coroutine, stops the thread; the object cannot be used again.
    - Fork-safe: a child process gets a fresh thread and loop on first use.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._closing = False  # set on the loop while close() cancels the work still running
        self._tasks: set[asyncio.Task[Any]] = set()  # used on the loop thread only
        _instances.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("running" if self._loop else "not started")
        return f"<LoopThread {self._name!r} {state}>"

    # -- fork ------------------------------------------------------------------------------

    def _forget_parent(self) -> None:
        """In a forked child: drop the parent's thread and loop (without touching them)."""
        if self._loop is not None:
            _inherited.append((self._loop, self._tasks))
        self._loop = self._thread = None
        self._tasks = set()
        self._lock = threading.Lock()
        self._pid = os.getpid()

    # -- the loop --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def thread(self) -> threading.Thread | None:
        """The loop's thread, once started."""
        return self._thread

    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop (starting its thread on first use). Raises ``CLIENT_CLOSED`` after
        :meth:`close`."""
        if self._pid != os.getpid():
            self._forget_parent()
        with self._lock:
            if self._closed:
                raise _closed_error()
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def main() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    try:
                        loop.run_forever()
                    finally:
                        try:
                            loop.run_until_complete(loop.shutdown_asyncgens())
                        finally:
                            loop.close()

                thread = threading.Thread(target=main, name=self._name, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coro: Coroutine[Any, Any, R]) -> concurrent.futures.Future[R]:
        """Start ``coro`` on the loop; its outcome arrives in the returned future."""
        return self._submit(coro).future

    def _submit(self, coro: Coroutine[Any, Any, Any]) -> _Call:
        try:
            loop = self.loop()
        except BaseException:
            coro.close()
            raise
        call = _Call()
        context = contextvars.copy_context()

        def start() -> None:
            if call.future.cancelled():
                coro.close()
                call.ended.set()
                return
            task = loop.create_task(coro, context=context)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._settle(call, t))

            def cancel(future: concurrent.futures.Future[Any]) -> None:
                if future.cancelled() and not task.done():
                    try:
                        loop.call_soon_threadsafe(task.cancel)
                    except RuntimeError:
                        pass  # the loop is closed: the task is over

            call.future.add_done_callback(cancel)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # closed meanwhile
            coro.close()
            raise _closed_error() from None
        return call

    def _settle(self, call: _Call, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        future = call.future
        try:
            if future.cancelled():
                return
            if task.cancelled():
                if self._closing:
                    future.set_exception(
                        KoineError("the client was closed during the call", "CLIENT_CLOSED")
                    )
                else:
                    future.cancel()
            elif (exc := task.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(task.result())
        except concurrent.futures.InvalidStateError:
            pass  # cancelled by the caller meanwhile
        finally:
            call.ended.set()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run ``coro`` on the loop thread and wait for it; Ctrl-C cancels it."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise KoineError(
                "the sync client was called from its own loop thread", "INVALID_ARGUMENT"
            )
        call = self._submit(coro)
        future, thread = call.future, self._thread
        try:
            while True:
                try:
                    return future.result(timeout=_POLL)
                except concurrent.futures.TimeoutError:
                    if (thread is None or not thread.is_alive()) and not future.done():
                        future.cancel()  # the loop is gone: the work would never end
                        raise _closed_error() from None
        except BaseException:
            if not future.done():
                future.cancel()
                call.ended.wait(_CANCEL_GRACE)
            raise

    def close(self, final: Coroutine[Any, Any, Any] | None = None) -> None:
        """Cancel the work still running (it raises ``CLIENT_CLOSED``), run ``final`` (e.g. the
        closing of a connection pool), stop the thread. Idempotent; safe from any thread,
        including the loop's own (then it does not wait)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._closed = True
        if loop is None or thread is None or loop.is_closed():
            if final is not None:
                final.close()
            return

        async def shut_down() -> None:
            self._closing = True
            try:
                me = asyncio.current_task()
                work = [t for t in asyncio.all_tasks() if t is not me]
                for task in work:
                    task.cancel()
                if work:
                    await asyncio.wait(work, timeout=_CANCEL_GRACE)
                if final is not None:
                    try:
                        async with asyncio.timeout(_CLOSE_TIMEOUT):
                            await final
                    except Exception:
                        pass
            finally:
                loop.stop()

        def begin() -> None:
            loop.create_task(shut_down())

        try:
            loop.call_soon_threadsafe(begin)
        except RuntimeError:  # the loop closed meanwhile
            if final is not None:
                final.close()
            return
        if threading.current_thread() is not thread:
            thread.join(timeout=_CANCEL_GRACE + _CLOSE_TIMEOUT + 1.0)


def _after_fork_in_child() -> None:
    for runner in list(_instances):
        runner._forget_parent()  # pyright: ignore[reportPrivateUsage]


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_after_fork_in_child)
