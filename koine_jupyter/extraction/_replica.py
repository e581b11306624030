"""One gateway of an extraction: its concurrency window, and its health.

**Window.** Starts at the gateway's ``/health`` limit (less the slots others use), never above
it. Each success widens it by about one slot per window's worth of rows, up to a *ceiling*.
A 429 at ``c`` requests in flight lowers the ceiling to ``c - 1`` and holds it there for
:data:`HOLD` seconds; after that the ceiling rises by one slot per :data:`PROBE_EVERY`
seconds without a 429, so the window settles just below what the gateway really has free
instead of climbing back into the wall. A 429 while our own requests are in flight does not
pause the gateway: the row waits for one of ours to finish (the window now equals what is in
flight), which frees a slot that is certainly ours. Only a 429 with nothing of ours in flight
(others hold every slot) waits its ``Retry-After``.

**Outages.** A request that does not get through is first the row's trouble: the run asks the
gateway's ``/health`` (one check at a time), and only a check that fails too starts a *failure
event* (:meth:`Replica.on_connection_failure`): the gateway cools down (0.25 s, doubling per
event up to :data:`BACKOFF_MAX`), then takes one probe request at a time until a request or a
health check sent after the event began gets through. Failures of requests sent before the
event started (all those in flight when a gateway restarts) belong to that event: one outage
counts once. A gateway that answered in this run is taken out only when an outage lasts
``max_outage`` seconds; one that never answered, after :data:`QUICK_EVENTS` events (a wrong
URL fails fast). A gateway whose ``/health`` answers while its requests do not is taken out
when :data:`MISFITS` rows that failed on it in a row were then answered by another gateway:
its failures are not the rows' (with one gateway, each such row fails after its retries).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._clients import ClientLike

if TYPE_CHECKING:
    from koine_sdk.ledger import RequestShape

__all__ = ["BACKOFF", "BACKOFF_MAX", "HOLD", "MISFITS", "PROBE_EVERY", "QUICK_EVENTS", "Replica"]

DEFAULT_LIMIT = 2  # per gateway, when /health does not tell
HOLD = 30.0  # seconds the ceiling stays below the level of the last 429
PROBE_EVERY = 10.0  # seconds without a 429 per slot the ceiling regains after HOLD
BACKOFF = 0.25  # seconds of the first cool-down of an outage
BACKOFF_MAX = 5.0
QUICK_EVENTS = 3  # failure events before a gateway that never answered is taken out
MISFITS = 3  # rows failed here and answered elsewhere (none answered here) before it is out


class Replica:
    """One gateway: its client, concurrency window and health (all times: monotonic)."""

    def __init__(
        self,
        client: ClientLike,
        number: int,
        max_outage: float,
        *,
        shape: RequestShape | None = None,
    ) -> None:
        self.number = number
        self.client = client
        # what its requests send besides the prompt (with the model it asks for): the ledger
        # key of each answer it gives (None: the run's)
        self.shape = shape
        self.base_url = client.config.base_url
        self.max_outage = max_outage
        self.limit = DEFAULT_LIMIT
        self.window = float(DEFAULT_LIMIT)
        self.ceiling = float(DEFAULT_LIMIT)
        self.hold_until = 0.0
        self.active = 0
        self.cool_until = 0.0
        self.cooling_for_429 = False
        # health
        self.answered = False
        self.outage_started: float | None = None
        self.event_started = 0.0
        self.events = 0
        self.probing = False
        self.dead = False
        self.last_error: str | None = None
        self.checking = False  # a /health check is under way
        self.misfits = 0  # rows that failed here, then were answered by another gateway
        self.failing = 0  # requests in a row that did not get through (0 after a success)
        # counters
        self.sent = 0
        self.ok = 0
        self.throttled = 0
        self.waits_429 = 0
        self.failed_connections = 0
        self.outages = 0

    def set_limit(self, limit: int, active: int = 0) -> None:
        """The gateway's limit (``active``: slots others use now)."""
        self.limit = max(1, limit)
        self.ceiling = float(self.limit)
        self.window = float(max(1, self.limit - max(0, active)))

    def capacity(self, now: float) -> int:
        """How many more requests may start now."""
        if self.dead or now < self.cool_until:
            return 0
        if self.probing:
            return 1 - self.active
        if self.ceiling < self.limit and now >= self.hold_until:
            self.ceiling += 1.0
            self.hold_until = now + PROBE_EVERY
        return max(1, math.floor(min(self.window, self.ceiling))) - self.active

    @property
    def in_outage(self) -> bool:
        return self.outage_started is not None

    def _recovered(self, sent_at: float) -> bool:
        """An answer to a request sent at ``sent_at``: it ends an outage only if it was sent
        after the outage's latest event began (an older one proves nothing about now)."""
        self.answered = True
        if self.outage_started is not None and sent_at < self.event_started:
            return False
        self.outage_started = None
        self.events = 0
        self.probing = False
        return True

    def on_success(self, sent_at: float = math.inf) -> None:
        self.ok += 1
        self.misfits = 0
        self.failing = 0
        if not self._recovered(sent_at):
            return
        if self.window < self.ceiling:
            self.window = min(self.ceiling, self.window + 1.0 / self.window)

    def on_answer(self, sent_at: float = math.inf) -> None:
        """The gateway answered (with an error about the row): it is reachable."""
        self._recovered(sent_at)

    def on_throttled(self, now: float, level: int, wait: float) -> None:
        """A 429 on a request sent with ``level`` of ours in flight (itself included)."""
        self.throttled += 1
        self.answered = True
        self.ceiling = max(1.0, min(self.ceiling, float(level - 1)))
        self.window = min(self.window, self.ceiling)
        self.hold_until = now + HOLD
        if self.active == 0:  # others hold every slot: wait as told
            self.waits_429 += 1
            self.cool_until = max(self.cool_until, now + wait)
            self.cooling_for_429 = True

    def on_failed_request(self, message: str) -> None:
        """A request did not get through (whose fault it is, the health check tells)."""
        self.failed_connections += 1
        self.failing += 1
        self.last_error = message

    def on_misfit(self, others_alive: bool) -> None:
        """A row that failed to get through here was answered by another gateway."""
        self.misfits += 1
        if others_alive and self.misfits >= MISFITS and not self.dead:
            self.dead = True
            self.last_error = (
                f"{self.last_error} ({self.misfits} rows that failed here were answered by "
                "another gateway)"
            )

    def on_connection_failure(self, now: float, sent_at: float, message: str) -> None:
        """The gateway is unreachable: a health check (or request) sent at ``sent_at``
        failed."""
        self.last_error = message
        if self.dead:
            return
        if self.outage_started is not None and sent_at < self.event_started:
            return  # in flight when this event began: the same failure, counted once
        if self.outage_started is None:
            self.outage_started = now
            self.outages += 1
        self.events += 1
        self.event_started = now
        self.probing = True
        if self.answered:
            gone = now - self.outage_started >= self.max_outage
        else:
            gone = self.events >= QUICK_EVENTS
        if gone:
            self.dead = True
            return
        self.cool_until = max(
            self.cool_until, now + min(BACKOFF_MAX, BACKOFF * 2 ** (self.events - 1))
        )
        self.cooling_for_429 = False

    def stats(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "limit": self.limit,
            "sent": self.sent,
            "ok": self.ok,
            "throttled": self.throttled,
            "waits_429": self.waits_429,
            "connection_failures": self.failed_connections,
            "outages": self.outages,
            "taken_out": self.dead,
        }
