"""The sync client: scripts, running event loops, threads, and Ctrl-C."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import BaseModel

from koine_sdk import (
    GenerateObjectResult,
    GenerateTextResult,
    KoineError,
    SyncKoineClient,
    create_koine_sync,
)


class Item(BaseModel):
    name: str
    qty: int


class Basket(BaseModel):
    owner: str
    items: list[Item]


def test_generate_text(koine_sync: SyncKoineClient) -> None:
    result = koine_sync.generate_text(prompt="Hello sync")
    assert isinstance(result, GenerateTextResult)
    assert result.text == "Echo: Hello sync"


def test_stream_text(koine_sync: SyncKoineClient) -> None:
    with koine_sync.stream_text(prompt="alpha beta gamma delta") as r:
        chunks = list(r.text_stream)
        assert len(chunks) >= 4
        assert "".join(chunks) == r.text() == "Echo: alpha beta gamma delta"
        assert r.usage().total_tokens > 0
        assert r.session_id()


def test_objects(koine_sync: SyncKoineClient) -> None:
    result = koine_sync.generate_object(prompt="basket [[items=2]]", schema=Basket)
    assert isinstance(result, GenerateObjectResult)
    assert len(result.object.items) == 2
    with koine_sync.stream_object(prompt="basket [[items=4]]", schema=Basket) as r:
        partials = list(r.partial_object_stream)
        final = r.object()
    assert isinstance(final, Basket)
    assert len(final.items) == 4
    assert len(partials) > 4
    assert len({type(p) for p in partials}) == 1


def test_health_and_errors(koine_sync: SyncKoineClient) -> None:
    assert koine_sync.health().healthy
    with pytest.raises(KoineError) as info:
        koine_sync.generate_text(prompt="[[fail]]")
    assert info.value.code == "CLI_EXIT_ERROR"
    with koine_sync.stream_text(prompt="one two three four [[fail-after=2]]") as r:
        got: list[str] = []
        with pytest.raises(KoineError) as info:
            got.extend(r.text_stream)
        assert r.received_text == "Echo: one"
    # still usable
    assert koine_sync.generate_text(prompt="again").text == "Echo: again"


def test_inside_a_running_event_loop(koine_gateway: Any) -> None:
    """A coroutine calling sync library code (a Jupyter cell, IPython autoawait)."""

    async def cell() -> str:
        with create_koine_sync(
            base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
        ) as koine:
            with koine.stream_text(prompt="inside a loop") as r:
                return "".join(r.text_stream)

    assert asyncio.run(cell()) == "Echo: inside a loop"


def test_from_many_threads(koine_sync: SyncKoineClient) -> None:
    def work(i: int) -> str:
        if i % 2:
            return koine_sync.generate_text(prompt=f"t{i}").text
        with koine_sync.stream_text(prompt=f"t{i}") as r:
            return r.text()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(24)))
    assert results == [f"Echo: t{i}" for i in range(24)]


def _interrupt_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_ctrl_c_during_a_stream_stops_it(koine_sync: SyncKoineClient, koine_gateway: Any) -> None:
    received: list[str] = []
    timer = _interrupt_after(0.5)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        with koine_sync.stream_text(prompt=" ".join(["w"] * 200) + " [[slow=0.05]]") as r:
            for chunk in r.text_stream:
                received.append(chunk)
    stopped = time.monotonic() - start
    timer.join()
    assert received, "some text arrived before the interrupt"
    assert stopped < 0.5 + 1.0
    assert koine_gateway.wait_for_disconnect(2.0), "the gateway saw the connection close"
    assert koine_sync.generate_text(prompt="after ctrl-c").text == "Echo: after ctrl-c"


def test_ctrl_c_during_a_blocking_call(koine_sync: SyncKoineClient, koine_gateway: Any) -> None:
    timer = _interrupt_after(0.3)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        koine_sync.generate_text(prompt="slow [[delay=5]]")
    assert time.monotonic() - start < 0.3 + 1.0
    timer.join()
    assert koine_gateway.wait_for_disconnect(2.0)
    assert koine_sync.generate_text(prompt="next").text == "Echo: next"


def test_no_warnings_after_interrupt(koine_gateway: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        koine = create_koine_sync(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
        timer = _interrupt_after(0.2)
        with pytest.raises(KeyboardInterrupt):
            koine.generate_text(prompt="slow [[delay=3]]")
        timer.join()
        koine.close()
        gc.collect()
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "never awaited" in m or "destroyed" in m], messages


def test_plain_script_without_event_loop(koine_gateway: Any) -> None:
    """`import koine_sdk` in a script, no asyncio anywhere: it works and exits promptly."""
    script = textwrap.dedent(
        """
        import koine_sdk
        koine = koine_sdk.create_koine_sync()
        print(koine.generate_text(prompt="from a script").text)
        with koine.stream_text(prompt="streamed") as r:
            print("".join(r.text_stream))
        """
    )
    env = dict(
        os.environ, KOINE_BASE_URL=koine_gateway.base_url, KOINE_AUTH_KEY=koine_gateway.auth_key
    )
    out = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert out.stdout.splitlines() == ["Echo: from a script", "Echo: streamed"]
    assert "Warning" not in out.stderr


def test_importing_does_not_patch_the_loop() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import asyncio, koine_sdk, sys; "
            "print(asyncio.run.__module__, 'nest_asyncio' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert out.stdout.split() == ["asyncio.runners", "False"]


def test_work_runs_in_the_callers_context(koine_sync: SyncKoineClient) -> None:
    """In a kernel, context variables carry the executing cell's parent header: work done on
    the loop thread must see the caller's values so its output lands in the calling cell."""
    import contextvars

    cell: contextvars.ContextVar[str] = contextvars.ContextVar("cell", default="none")

    async def read() -> str:
        return cell.get()

    def in_thread(name: str) -> str:
        cell.set(name)
        return koine_sync._runner.run(read())  # pyright: ignore[reportPrivateUsage]

    with ThreadPoolExecutor(max_workers=2) as pool:
        assert list(pool.map(in_thread, ["cell-1", "cell-2"])) == ["cell-1", "cell-2"]
