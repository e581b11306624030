"""Work done in child processes by test_lifecycle.py (importable by a spawned interpreter)."""

from __future__ import annotations

import multiprocessing.queues
from typing import Any

from koine_sdk import LoopThread, SyncKoineClient

CLIENT: SyncKoineClient | None = None  # set by the parent before it forks
LOOP = LoopThread(name="koine-test-module-loop")  # like koine_jupyter's private extract loop


async def _answer() -> str:
    return "from the module loop"


def use_inherited(queue: multiprocessing.queues.Queue[Any]) -> None:
    """In a forked child: use the client and the module-level loop the parent already used."""
    try:
        assert CLIENT is not None
        out = [CLIENT.generate_text(prompt="from the child").text]
        with CLIENT.stream_text(prompt="child stream") as r:
            out.append("".join(r.text_stream))
        out.append(LOOP.run(_answer()))
        CLIENT.close()
        queue.put(("ok", out))
    except BaseException as exc:
        queue.put(("error", repr(exc)))


def use_pickled(client: SyncKoineClient) -> list[str]:
    """In a spawned child: a client that travelled by pickle."""
    with client:
        return [client.generate_text(prompt="spawned").text, LOOP.run(_answer())]
