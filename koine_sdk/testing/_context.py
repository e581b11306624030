"""The per-request context: notices the client going away, sleeps that end when it does, and
closing the connection from the server's side."""

from __future__ import annotations

import asyncio

from starlette.types import Receive, Send

from ._state import GatewayState

__all__ = ["RAW_SEND", "AbortConnectionError", "RequestContext"]

RAW_SEND = "koine.raw_send"  # the scope key of the server's own send (it can reach the socket)


class AbortConnectionError(Exception):
    """Raised to make the server drop a connection when its transport cannot be reached."""


class RequestContext:
    """Per-request: notices the client going away, and can close the connection itself."""

    __slots__ = (
        "client_gone",
        "finished",
        "listener",
        "raw_send",
        "server_closed",
        "state",
        "stop",
    )

    def __init__(self, state: GatewayState, receive: Receive, raw_send: Send | None) -> None:
        self.state = state
        self.raw_send = raw_send
        self.stop = asyncio.Event()
        self.finished = False
        self.server_closed = False
        self.client_gone = False
        self.listener = asyncio.get_running_loop().create_task(self._listen(receive))
        state.contexts.add(self)

    async def _listen(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.finished and not self.server_closed:
            self.client_gone = True
            self.state.note_disconnect()
        self.stop.set()

    async def pause(self, seconds: float) -> bool:
        """Sleep; False when the client left or the server stops meanwhile."""
        if seconds > 0:
            try:
                async with asyncio.timeout(seconds):
                    await self.stop.wait()
            except TimeoutError:
                pass
        return not self.stop.is_set()

    async def abort(self) -> None:
        """Close the connection now (data already written is still flushed)."""
        self.server_closed = True
        owner = getattr(self.raw_send, "__self__", None)
        transport = getattr(owner, "transport", None)
        if transport is None:
            raise AbortConnectionError
        transport.close()
        try:
            async with asyncio.timeout(1.0):
                await self.stop.wait()  # the server has seen the connection go
        except TimeoutError:
            pass

    def close(self) -> None:
        self.finished = True
        self.listener.cancel()
        self.state.contexts.discard(self)
