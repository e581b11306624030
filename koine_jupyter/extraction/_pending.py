"""What a run waits for besides its requests: each gateway's limit from ``/health`` before the
first request (:func:`learn_limits`), rows sitting out a short back-off before their next
attempt, and ``/health`` checks of gateways a request did not get through to.

A check that fails (any error: refused, closed, a proxy's 5xx, no answer in time) is a failure
event of the gateway (:meth:`._replica.Replica.on_connection_failure`); a check that answers
ends an outage that began before it was sent (``/health``'s 503 "unhealthy" is an answer: the
gateway itself is there). One check per gateway at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from koine_sdk import KoineError

from ._clients import call_on_home
from ._decide import describe, is_connection_trouble

if TYPE_CHECKING:
    from ._replica import Replica
    from ._state import Unit

__all__ = ["CHECK_TIMEOUT", "Pending", "learn_limits"]

CHECK_TIMEOUT = 5.0  # seconds a health check may take


async def learn_limits(replicas: Sequence[Replica], concurrency: int | None) -> None:
    """Each gateway's limit from ``/health``, capped by ``concurrency=``; a gateway that does
    not answer starts in an outage (its rows go to the others, or wait for it)."""

    async def learn(r: Replica) -> None:
        if concurrency is not None:
            r.set_limit(concurrency)
        if getattr(r.client, "replay", "off") == "strict":
            # a strict client answers from its ledger or refuses: it never talks to a
            # gateway, so it is not asked for one's health either
            r.answered = True
            return
        try:
            health = await call_on_home(r.client, lambda c: c.health(timeout=CHECK_TIMEOUT))
        except KoineError as exc:
            if is_connection_trouble(exc):
                r.on_connection_failure(time.monotonic(), 0.0, describe(exc))
            return
        except Exception:
            return
        r.answered = True
        if health.concurrency is not None:
            slots = health.concurrency.non_streaming
            limit = slots.limit
            if concurrency is not None:
                limit = min(limit, concurrency)
            r.set_limit(limit, slots.active)

    await asyncio.gather(*(learn(r) for r in replicas))


@dataclass(slots=True)
class Pending:
    """The timers and checks of one run (all on its event loop)."""

    held: int = 0  # rows waiting out a back-off (neither queued nor in flight)
    _timers: set[asyncio.TimerHandle] = field(default_factory=lambda: set[asyncio.TimerHandle]())
    _checks: set[asyncio.Task[None]] = field(default_factory=lambda: set[asyncio.Task[None]]())

    def hold(self, unit: Unit, seconds: float, back: Callable[[Unit], None]) -> None:
        """Give ``unit`` to ``back`` (which queues it) after ``seconds``."""
        self.held += 1

        def release() -> None:
            self._timers.discard(handle)
            self.held -= 1
            back(unit)

        handle = asyncio.get_running_loop().call_later(seconds, release)
        self._timers.add(handle)

    def check_health(self, replica: Replica, then: Callable[[], None]) -> None:
        """Ask ``replica``'s ``/health`` (unless a check is under way or it is out); ``then``
        runs after the verdict is applied."""
        if replica.checking or replica.dead:
            return
        replica.checking = True
        sent_at = time.monotonic()

        async def check() -> None:
            try:
                await call_on_home(replica.client, lambda c: c.health(timeout=CHECK_TIMEOUT))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                replica.on_connection_failure(time.monotonic(), sent_at, describe(exc))
            else:
                replica.on_answer(sent_at)
            finally:
                replica.checking = False
            then()

        task = asyncio.get_running_loop().create_task(check())
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    def cancel(self) -> None:
        """The run ended: nothing more comes back (the held rows were finished by the run)."""
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.held = 0
        for task in self._checks:
            task.cancel()
