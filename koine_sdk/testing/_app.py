"""The local gateway's HTTP side: a Starlette app that speaks the Koine wire protocol.

The routes lead to :mod:`._handlers` (the check order of the real gateway); streams are written
by :mod:`._writer` with raw ASGI ``http.response.body`` messages, one per event, so every event
leaves as its own HTTP chunk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._context import RAW_SEND
from ._endpoints import Endpoint
from ._handlers import Handlers
from ._state import GatewayState

__all__ = ["build_app"]

_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def build_app(state: GatewayState) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """The ASGI app of a local gateway over ``state``."""
    handlers = Handlers(state)
    routes = [Route("/health", handlers.health, methods=_ALL_METHODS)]
    routes += [Route(e.value, handlers.endpoint(e), methods=_ALL_METHODS) for e in Endpoint]
    routes.append(Route("/{rest:path}", handlers.not_found, methods=_ALL_METHODS))
    starlette = Starlette(routes=routes)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND] = send  # the server's own send: it can reach the socket
        await starlette(scope, receive, send)

    return app
