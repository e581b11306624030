"""Every use of the SDK's internals by the extraction, in one place.

The SDK is getting a small public seam for these (a sync client's event loop, its async
client, the JSON Schema a call sends, the ``repairs`` option); when it lands, this module is
the only one to change.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from koine_sdk import KoineClient, KoineConfig, SyncKoineClient, create_koine
from koine_sdk._partial import parser_for  # pyright: ignore[reportPrivateUsage]
from koine_sdk.sync import LoopThread

__all__ = [
    "PRIVATE_LOOP",
    "ClientLike",
    "async_of",
    "call_on_home",
    "generate_object",
    "home_loop",
    "loop_for",
    "make_client",
    "supports_repairs",
    "wire_schema",
]

ClientLike = KoineClient | SyncKoineClient
R = TypeVar("R")

PRIVATE_LOOP = LoopThread(name="koine-extract-loop")
"""Where the sync ``extract`` runs when no sync client brings a loop of its own."""


def async_of(client: ClientLike) -> KoineClient:
    """The async client doing the work (a sync client wraps one)."""
    return client.async_client if isinstance(client, SyncKoineClient) else client


def home_loop(client: ClientLike) -> asyncio.AbstractEventLoop | None:
    """The loop a sync client runs its async client on (``None`` for an async client)."""
    return client.loop_thread.loop() if isinstance(client, SyncKoineClient) else None


async def call_on_home(
    client: ClientLike, make: Callable[[KoineClient], Coroutine[Any, Any, R]]
) -> R:
    """Run ``make(async client)`` where the client lives: here for an async client, on its
    own loop thread for a sync one (cancelling this await cancels it there)."""
    home = home_loop(client)
    if home is None or home is asyncio.get_running_loop():
        return await make(async_of(client))
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(async_of(client)), home))


def loop_for(clients: Sequence[ClientLike]) -> LoopThread:
    """Where the sync extract runs its scheduler: the loop of the first sync client (no hop
    between threads per request), else a private loop."""
    for c in clients:
        if isinstance(c, SyncKoineClient):
            return c.loop_thread
    return PRIVATE_LOOP


def make_client(config: KoineConfig) -> KoineClient:
    """An async client of ``config`` (owned, and closed, by the extract call)."""
    return create_koine(config)


def wire_schema(schema: type[Any]) -> dict[str, Any]:
    """The JSON Schema ``generate_object`` sends for ``schema`` (the ledger key hashes it)."""
    return parser_for(schema).json_schema()


@functools.cache
def supports_repairs() -> bool:
    """Whether this SDK's ``generate_object`` takes ``repairs=``."""
    return "repairs" in inspect.signature(KoineClient.generate_object).parameters


async def generate_object(
    client: ClientLike,
    *,
    prompt: str,
    schema: type[Any],
    system: str | None,
    model: str | None,
    allowed_tools: Sequence[str] | None,
    timeout: float | None,
    repairs: int,
) -> Any:
    """One ``generate_object`` where the client lives (``repairs`` passed when > 0)."""
    extra: dict[str, Any] = {"repairs": repairs} if repairs else {}
    return await call_on_home(
        client,
        lambda c: c.generate_object(
            prompt=prompt,
            schema=schema,
            system=system,
            model=model,
            allowed_tools=allowed_tools,
            timeout=timeout,
            **extra,
        ),
    )
