"""Leases on a gateway's slots, shared by every partition of a Dask computation.

Each request holds one lease of its gateway for as long as it runs (see ``Run.gate``), so the
requests in flight to a gateway, summed over every process, stay within its limit.

- On a ``distributed`` worker: one :class:`distributed.Semaphore` per gateway, kept by the
  scheduler, named after the gateway's URL and limit (:func:`semaphore_name`) with
  ``max_leases`` = the limit. Every worker, every partition and every computation on the
  cluster that uses that gateway share it. A worker that dies keeps its leases until the
  scheduler's lease timeout (``distributed.scheduler.locks.lease-timeout``, 30 s by default)
  gives them back; until then the gateway is used below its limit, never above.
- Elsewhere (Dask's local threaded scheduler): one :class:`asyncio.Semaphore` per gateway on
  the process's extraction loop, where every partition of the process runs its requests.

The semaphore calls run on the worker's own event loop (the API of ``distributed`` is bound
to it); the requests run on the extraction loop; the two meet through
``run_coroutine_threadsafe``. A lease granted to a request that was cancelled meanwhile is
given back at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import weakref
from collections.abc import AsyncGenerator
from typing import Any, Protocol

from ._replica import Replica

__all__ = ["Leases", "LoopLeases", "SchedulerLeases", "leases_here", "semaphore_name"]

CLOSE_TIMEOUT = 10.0  # seconds close() waits for the last releases to reach the scheduler


class Leases(Protocol):
    def __call__(self, replica: Replica) -> contextlib.AbstractAsyncContextManager[object]: ...

    def close(self) -> None: ...


def semaphore_name(base_url: str, limit: int) -> str:
    """The scheduler-wide name of a gateway's semaphore (no URL in clear: it may hold a user)."""
    digest = hashlib.sha256(base_url.encode()).hexdigest()[:16]
    return f"koine-gateway-{digest}-limit-{limit}"


async def _acquire(semaphore: Any) -> bool:
    return bool(await semaphore.acquire())


async def _release(semaphore: Any) -> None:
    await semaphore.release()


class SchedulerLeases:
    """Leases of ``distributed.Semaphore`` objects, one per gateway, on this worker."""

    def __init__(self, worker: Any) -> None:
        self._worker_loop: Any = worker.loop  # tornado IOLoop: what Semaphore binds to
        self._loop: asyncio.AbstractEventLoop = worker.loop.asyncio_loop
        self._scheduler: Any = worker.scheduler
        self._semaphores: dict[str, Any] = {}
        self._releases: set[concurrent.futures.Future[None]] = set()

    def _semaphore(self, replica: Replica) -> Any:
        name = semaphore_name(replica.base_url, replica.limit)
        semaphore = self._semaphores.get(name)
        if semaphore is None:
            from distributed import Semaphore

            semaphore = Semaphore(
                max_leases=replica.limit,
                name=name,
                scheduler_rpc=self._scheduler,
                loop=self._worker_loop,
            )
            self._semaphores[name] = semaphore
        return semaphore

    @contextlib.asynccontextmanager
    async def __call__(self, replica: Replica) -> AsyncGenerator[None]:
        semaphore = self._semaphore(replica)
        granted = asyncio.run_coroutine_threadsafe(_acquire(semaphore), self._loop)
        try:
            # Shielded: cancelling the wait must not cancel the scheduler call half-way (a
            # lease granted there but never recorded here would stay taken until it times out).
            await asyncio.shield(asyncio.wrap_future(granted))
        except asyncio.CancelledError:
            granted.add_done_callback(lambda done: self._give_back(semaphore, done))
            raise
        try:
            yield
        finally:
            self._release(semaphore)

    def _give_back(self, semaphore: Any, done: concurrent.futures.Future[bool]) -> None:
        if not done.cancelled() and done.exception() is None and done.result():
            self._release(semaphore)

    def _release(self, semaphore: Any) -> None:
        """Give a lease back without waiting (:meth:`close` waits for the last ones)."""
        future = asyncio.run_coroutine_threadsafe(_release(semaphore), self._loop)
        self._releases.add(future)
        future.add_done_callback(self._releases.discard)

    def close(self) -> None:
        """Wait until every lease is given back, then stop refreshing these semaphores."""
        concurrent.futures.wait(list(self._releases), timeout=CLOSE_TIMEOUT)
        for semaphore in self._semaphores.values():
            refresh = getattr(semaphore, "refresh_callback", None)
            if refresh is not None:
                self._worker_loop.add_callback(refresh.stop)


_LOOP_SEMAPHORES: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]
] = weakref.WeakKeyDictionary()


class LoopLeases:
    """Leases of an ``asyncio.Semaphore`` per gateway on the running loop: shared by the
    partitions of this process (they all run their requests on the extraction loop)."""

    @contextlib.asynccontextmanager
    async def __call__(self, replica: Replica) -> AsyncGenerator[None]:
        semaphores = _LOOP_SEMAPHORES.setdefault(asyncio.get_running_loop(), {})
        name = semaphore_name(replica.base_url, replica.limit)
        semaphore = semaphores.get(name)
        if semaphore is None:
            semaphore = semaphores[name] = asyncio.Semaphore(replica.limit)
        async with semaphore:
            yield

    def close(self) -> None:
        pass


def leases_here() -> Leases:
    """The leases of where this partition runs: a ``distributed`` worker's, else this
    process's."""
    try:
        from distributed import get_worker
    except ImportError:
        return LoopLeases()
    try:
        worker = get_worker()
    except ValueError:
        return LoopLeases()
    return SchedulerLeases(worker)
