"""How the extraction uses the SDK's clients, in one place: the public seam of the sync client
(``loop()``, ``run()``, ``arun()``), the schema a call sends, and clients made from configs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from koine_sdk import KoineClient, KoineConfig, LoopThread, SyncKoineClient, create_koine
from koine_sdk import json_schema as wire_schema

__all__ = [
    "PRIVATE_LOOP",
    "ClientLike",
    "Runner",
    "call_on_home",
    "generate_object",
    "generate_text",
    "make_client",
    "runner_for",
    "wire_schema",
]

ClientLike = KoineClient | SyncKoineClient
R = TypeVar("R")

PRIVATE_LOOP = LoopThread(name="koine-extract-loop")
"""Where the sync ``extract`` runs when no sync client brings a loop of its own."""


async def call_on_home(
    client: ClientLike, make: Callable[[KoineClient], Coroutine[Any, Any, R]]
) -> R:
    """Run ``make(async client)`` where the client lives: here for an async client, on its
    own loop for a sync one (cancelling this await cancels it there)."""
    if isinstance(client, SyncKoineClient):
        return await client.arun(make)
    return await make(client)


class Runner:
    """Where the sync extract runs its scheduler: the loop of the first sync client (no hop
    between threads per request), else a private loop thread."""

    def __init__(self, client: SyncKoineClient | None) -> None:
        self._client = client

    def loop(self) -> asyncio.AbstractEventLoop:
        return self._client.loop() if self._client is not None else PRIVATE_LOOP.loop()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run ``coro`` there and wait (Ctrl-C cancels it)."""
        if self._client is None:
            return PRIVATE_LOOP.run(coro)

        async def work(_: KoineClient) -> R:
            return await coro

        return self._client.run(work)


def runner_for(clients: Sequence[ClientLike]) -> Runner:
    return Runner(next((c for c in clients if isinstance(c, SyncKoineClient)), None))


def make_client(config: KoineConfig) -> KoineClient:
    """An async client of ``config`` (owned, and closed, by the extract call)."""
    return create_koine(config)


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
    replay: str | None = None,
) -> Any:
    """One ``generate_object`` where the client lives. The extraction writes every answer to
    its ledger itself (with its run): a client in ``record``/``replay`` mode does not write it a
    second time."""

    async def call(c: KoineClient) -> Any:
        # record=False: the extraction writes the answer itself, with its run
        return await c.generate_object(
            prompt=prompt,
            schema=schema,
            system=system,
            model=model,
            allowed_tools=allowed_tools,
            timeout=timeout,
            repairs=repairs,
            replay=replay,
            record=False,
        )

    return await call_on_home(client, call)


async def generate_text(
    client: ClientLike,
    *,
    prompt: str,
    system: str | None,
    model: str | None,
    allowed_tools: Sequence[str] | None,
    timeout: float | None,
    replay: str | None = None,
) -> Any:
    """One ``generate_text`` where the client lives (the run writes the ledger itself)."""

    async def call(c: KoineClient) -> Any:
        # record=False: the extraction writes the answer itself, with its run
        return await c.generate_text(
            prompt=prompt,
            system=system,
            model=model,
            allowed_tools=allowed_tools,
            timeout=timeout,
            replay=replay,
            record=False,
        )

    return await call_on_home(client, call)
