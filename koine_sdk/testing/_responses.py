"""The responses the handlers return: JSON bodies and errors, the canned fault answers, a response
never sent, and the two ``text/event-stream`` responses (a stream, and a gateway crash)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._context import RequestContext
from ._faults import JSON_TYPE, Fault
from ._jsontext import compact
from ._model import Run
from ._writer import Writer

__all__ = [
    "BUSY",
    "INTERNAL",
    "NO_KEY",
    "WRONG_KEY",
    "Aborted",
    "Crash",
    "EventStream",
    "error_response",
    "fault_response",
    "json_response",
]

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(compact(payload).encode(), status, dict(headers or {}), JSON_TYPE)


def error_response(status: int, message: str, code: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"error": message}
    if code is not None:
        body["code"] = code
    body.update(extra)
    return json_response(status, body)


class Aborted(Response):
    """A response that was never sent: the connection is gone."""

    def __init__(self) -> None:
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return None


NO_KEY = Fault.unauthorized()
WRONG_KEY = Fault.forbidden()
BUSY = Fault.rate_limited()
INTERNAL = Fault.http_error(500, "json")


def fault_response(fault: Fault) -> Response:
    return Response(fault.body, fault.status, dict(fault.headers))  # content type as given


class _SlotStream(Response):
    """A ``text/event-stream`` response that owns its request's concurrency slot and context:
    both are released when it ends, however it ends."""

    def __init__(self, ctx: RequestContext, release: Callable[[], None]) -> None:
        self.background = None
        self.ctx = ctx
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            await self.write_body(send)
        finally:
            self.ctx.close()
            self.release()

    async def write_body(self, send: Send) -> None:
        raise NotImplementedError


class Crash(_SlotStream):
    """What a stream whose CLI cannot be spawned gets from the real gateway: the status line
    and headers, then the connection closes as the gateway's process exits (the spawn error is
    not caught on the streaming routes). This gateway then stops too: connections are refused
    until :meth:`LocalGateway.restart`."""

    async def write_body(self, send: Send) -> None:
        self.ctx.state.crash()
        await self.ctx.abort()


class EventStream(_SlotStream):
    """``text/event-stream`` written event by event by ``routine``."""

    def __init__(
        self,
        routine: Callable[[Writer, Run], Awaitable[None]],
        run: Run,
        ctx: RequestContext,
        release: Callable[[], None],
        events_per_chunk: int,
    ) -> None:
        super().__init__(ctx, release)
        self.events_per_chunk = events_per_chunk
        self.routine = routine
        self.run = run

    async def write_body(self, send: Send) -> None:
        # The body goes straight to the server's send: Starlette's wrappers only watch for the
        # response start, and skipping them saves a few microseconds per event.
        ctx = self.ctx
        writer = Writer(ctx.raw_send or send, ctx, self.run, self.events_per_chunk)
        await self.routine(writer, self.run)
        if ctx.stop.is_set() and not (ctx.finished or ctx.server_closed or ctx.client_gone):
            await ctx.abort()  # the server is stopping: no done for this stream
