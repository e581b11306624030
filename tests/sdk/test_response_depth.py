"""JSON nesting is bounded by ``ResponseLimits.max_depth`` *before* anything is parsed: the
outcome is the same whatever the caller's stack (relying on ``RecursionError`` alone, a 400-level
answer passed from a shallow stack and failed from 600 frames deep; 800 levels were
``VALIDATION_ERROR`` or ``SSE_PARSE_ERROR`` depending on the stack).

A tiny server on 127.0.0.1 (port 0) answers every endpoint with JSON nested as the URL says (a
2xx body, or an event's data); the async client is called from 600 frames deep.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from koine_sdk import KoineConfig, KoineError, ResponseLimits, create_koine, create_koine_sync
from koine_sdk._response_limits import (  # pyright: ignore[reportPrivateUsage]
    DEFAULT_LIMITS,
    nesting_depth_exceeds,
)

LIMIT = DEFAULT_LIMITS.max_depth


class Tree(BaseModel):
    children: list[Tree] = []


def _tree(levels: int) -> str:
    """A ``Tree`` as JSON with ``levels`` nested arrays/objects (built without recursion)."""
    pairs, odd = divmod(levels, 2)
    return '{"children":[' * pairs + ("{}" if odd else "") + "]}" * pairs


def _answer(path: str, levels: int) -> bytes:
    value = _tree(levels - 1)  # inside one wrapping object
    usage = '"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}'
    if path.endswith("/generate-text"):
        return f'{{"text":"t","extra":{value},{usage},"sessionId":"s"}}'.encode()
    if path.endswith("/generate-object"):
        return f'{{"object":{value},"rawText":"",{usage},"sessionId":"s"}}'.encode()
    if path.endswith("/stream"):
        first = f'event: text\ndata: {{"text":"t","extra":{value}}}\n\n'
    else:
        first = f'event: object\ndata: {{"object":{value}}}\n\n'
    return (
        first + f'event: result\ndata: {{"sessionId":"s",{usage}}}\n\nevent: done\ndata: {{}}\n\n'
    ).encode()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        path = head.split(b" ", 2)[1].decode()
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":", 1)[1]))
        levels = int(path.split("/")[1])  # /<levels>/<endpoint>
        body = _answer(path, levels)
        ctype = b"text/event-stream" if "/stream" in path else b"application/json"
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: " + ctype + b"\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    ports: list[int] = []
    stop = loop.create_future()

    async def main() -> None:
        srv = await asyncio.start_server(_handle, "127.0.0.1", 0)
        ports.append(srv.sockets[0].getsockname()[1])
        ready.set()
        async with srv:
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield f"http://127.0.0.1:{ports[0]}"
    loop.call_soon_threadsafe(stop.set_result, None)
    thread.join(10)
    loop.close()


async def _ask(url: str, endpoint: str) -> Any:
    async with create_koine(KoineConfig(url, "k")) as koine:
        if endpoint == "generate-text":
            return (await koine.generate_text(prompt="p")).text
        if endpoint == "generate-object":
            return (await koine.generate_object(prompt="p", schema=Tree)).object
        if endpoint == "stream":
            async with koine.stream_text(prompt="p") as stream:
                return await stream.text()
        async with koine.stream_object(prompt="p", schema=Tree) as stream:
            async for _ in stream.partial_object_stream:
                pass
            return await stream.object()


def _call(url: str, endpoint: str) -> Any:
    # The async client on this thread: its parsing runs on the caller's (deep) stack.
    return asyncio.run(_ask(url, endpoint))


def _from_deep_stack(frames: int, run: Callable[[], Any]) -> Any:
    return run() if frames == 0 else _from_deep_stack(frames - 1, run)


ENDPOINTS = ["generate-text", "generate-object", "stream", "stream-object"]


@pytest.mark.parametrize("levels", [LIMIT + 1, 400])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_past_the_limit_is_typed_even_from_a_deep_stack(
    server: str, endpoint: str, levels: int
) -> None:
    with pytest.raises(KoineError) as info:
        _from_deep_stack(600, lambda: _call(f"{server}/{levels}", endpoint))
    expected = "INVALID_RESPONSE" if endpoint.startswith("generate") else "SSE_PARSE_ERROR"
    assert info.value.code == expected, info.value
    assert "max_depth" in info.value.message


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_nesting_at_the_limit_is_answered_from_a_deep_stack(server: str, endpoint: str) -> None:
    answer = _from_deep_stack(600, lambda: _call(f"{server}/{LIMIT}", endpoint))
    assert answer is not None


def test_the_limit_is_a_setting(server: str) -> None:
    config = KoineConfig(f"{server}/{LIMIT + 1}", "k", limits=ResponseLimits(max_depth=LIMIT + 1))
    with create_koine_sync(config) as koine:
        assert koine.generate_text(prompt="p").text == "t"
    with pytest.raises(KoineError) as info:
        KoineConfig("http://h", "k", limits=ResponseLimits(max_depth=0)).validated()
    assert info.value.code == "INVALID_CONFIG"


# -- the depth scan against an oracle ----------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(st.sampled_from(list('ab[]{}"\\\n é')), max_size=6)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)  # pyright: ignore[reportUnknownVariableType, reportUnknownArgumentType]
    return 0


@settings(max_examples=300, deadline=None)
@given(_values, st.integers(0, 8), st.booleans())
def test_the_scan_agrees_with_the_parsed_depth(value: Any, limit: int, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    expected = _depth(value) > limit
    assert nesting_depth_exceeds(text, limit) is expected
    assert nesting_depth_exceeds(text.encode(), limit) is expected


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(list('[]{}"\\a')), max_size=60), st.integers(0, 6))
def test_the_scan_takes_any_text(text: str, limit: int) -> None:
    # Invalid JSON (unterminated strings, stray backslashes) is never a crash; the same answer
    # for the text and its bytes.
    assert nesting_depth_exceeds(text, limit) is nesting_depth_exceeds(text.encode(), limit)
