"""What the app and the test thread share: the requests received, the replies queued, the
concurrency counters and the streams in flight."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ._faults import Reply
from ._model import Model
from ._settings import GatewaySettings

__all__ = ["GatewayState", "RecordedRequest"]


class Stoppable(Protocol):
    """What the state needs of a request in flight (a ``RequestContext``): its stop event."""

    stop: asyncio.Event


MAX_RECORDED = 10_000
"""Requests kept in :attr:`GatewayState.requests` (a long-running gateway must not grow)."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the gateway received it."""

    method: str
    path: str
    headers: dict[str, str]  # lowercased names
    body: bytes
    json: Any  # the parsed body, or None when it is absent or not JSON
    client: tuple[str, int] | None = None  # the peer: one per connection (pooling shows here)
    time: float = field(default_factory=time.monotonic)


class GatewayState:
    """Everything the app and the test thread share. Counters change on the server's loop only;
    queues and records are guarded by ``lock``."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.initial = settings
        self.settings = settings
        self.model = Model()
        self.lock = threading.Condition()
        self.replies: collections.deque[Reply] = collections.deque()
        self.requests: list[RecordedRequest] = []
        self.active = {"streaming": 0, "nonStreaming": 0}
        self.peak = {"streaming": 0, "nonStreaming": 0}
        self.rejected = 0
        self.disconnects = 0
        self.contexts: set[Stoppable] = set()  # the requests in flight
        self.crashed = False
        # Called on the server's loop when a spawn error takes the "process" down (set by
        # LocalGateway: it stops the server).
        self.on_crash: Callable[[], None] | None = None

    def reset(self) -> None:
        with self.lock:
            self.settings = self.initial
            self.replies.clear()
            self.requests.clear()
            self.model.reset()
            self.peak = dict(self.active)
            self.rejected = 0
            self.disconnects = 0

    def configure(self, **changes: Any) -> GatewaySettings:
        for name in ("allowed_tools", "disallowed_tools"):
            if changes.get(name) is not None:
                changes[name] = tuple(changes[name])
        self.settings = replace(self.settings, **changes)
        return self.settings

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)
            if len(self.requests) > MAX_RECORDED:  # the log is bounded: drop the oldest
                del self.requests[: len(self.requests) - MAX_RECORDED]
            self.lock.notify_all()

    def pop_reply(self) -> Reply | None:
        with self.lock:
            return self.replies.popleft() if self.replies else None

    def note_disconnect(self) -> None:
        with self.lock:
            self.disconnects += 1
            self.lock.notify_all()

    def acquire(self, kind: str) -> bool:
        limit = (
            self.settings.max_streaming if kind == "streaming" else self.settings.max_nonstreaming
        )
        if self.active[kind] >= limit:
            self.rejected += 1
            return False
        self.active[kind] += 1
        self.peak[kind] = max(self.peak[kind], self.active[kind])
        return True

    def release(self, kind: str) -> None:
        with self.lock:
            self.active[kind] -= 1
            self.lock.notify_all()

    def shutdown(self) -> None:
        """Called on the loop when the server stops: end every sleep and stream at once."""
        for ctx in list(self.contexts):
            ctx.stop.set()

    def crash(self) -> None:
        """The gateway's process exits (a CLI spawn error on a stream): every stream in flight
        ends without ``done`` and no further connection is accepted."""
        self.crashed = True
        self.shutdown()
        if self.on_crash is not None:
            self.on_crash()
