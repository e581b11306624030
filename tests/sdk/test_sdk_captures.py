"""Every capture in shared/samples, as bytes the real gateway sent, fed to the SDK through
httpx's transport seam (``http_client=``): the SDK must turn exactly those bytes into the
right results and errors. (The local gateway is tested against the same captures in
test_gateway_captures.py; this checks the client side against the field, not against us.)"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from _captures import CAPTURES
from pydantic import BaseModel

from koine_sdk import KoineError, create_koine

SAMPLES = CAPTURES


@dataclass
class Exchange:
    method: str
    path: str
    request: str
    status: int
    headers: dict[str, str]
    body: bytes


_REQUEST = re.compile(rb"^### (?:[A-Z]: )?(GET|POST) (\S+) ?(.*)$")


def _dechunk(raw: bytes) -> bytes:
    out = bytearray()
    rest = raw
    while rest:
        size_line, _, rest = rest.partition(b"\r\n" if b"\r\n" in rest[:12] else b"\n")
        size = int(size_line.strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size:].lstrip(b"\r\n")
    return bytes(out)


def load(name: str) -> list[Exchange]:
    """The request/response pairs of one capture file (responses with a status line)."""
    data = (SAMPLES / name).read_bytes()
    lines = data.split(b"\n")
    exchanges: list[Exchange] = []
    i = 0
    while i < len(lines):
        m = _REQUEST.match(lines[i])
        if not m or i + 1 >= len(lines) or not lines[i + 1].startswith(b"HTTP/1.1"):
            i += 1
            continue
        method, path, request = m.group(1).decode(), m.group(2).decode(), m.group(3).decode()
        status = int(lines[i + 1].split()[1])
        headers: dict[str, str] = {}
        j = i + 2
        while lines[j].strip():
            key, _, value = lines[j].decode().partition(":")
            headers[key.strip().lower()] = value.strip()
            j += 1
        body_lines: list[bytes] = []
        j += 1
        while j < len(lines) and not lines[j].startswith(b"### "):
            body_lines.append(lines[j])
            j += 1
        body = b"\n".join(body_lines)
        if headers.get("content-type", "").startswith("application/json"):
            body = body.strip()
        elif headers.get("transfer-encoding") == "chunked" and re.match(rb"^[0-9a-f]+\n", body):
            body = _dechunk(body)
        else:
            body = body.rstrip(b"\n") + b"\n\n"
        exchanges.append(Exchange(method, path, request, status, headers, body))
        i = j
    return exchanges


seen: list[httpx.Request] = []


def replay(exchange: Exchange) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {k: v for k, v in exchange.headers.items() if k != "content-length"}
        headers.pop("transfer-encoding", None)
        return httpx.Response(exchange.status, headers=headers, content=exchange.body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def client_for(exchange: Exchange) -> Any:
    return create_koine(
        base_url="http://127.0.0.1:3100", auth_key="capture-key", http_client=replay(exchange)
    )


def first(name: str, path: str | None = None) -> Exchange:
    for ex in load(name):
        if path is None or ex.path == path:
            return ex
    raise AssertionError(f"no exchange in {name}")


class Recipe(BaseModel):
    class Ingredient(BaseModel):
        name: str
        grams: float

    title: str
    servings: int
    ingredients: list[Ingredient]


class Weather(BaseModel):
    city: str
    temp: float


def test_every_capture_parses() -> None:
    names = sorted(p.name for p in SAMPLES.glob("*.txt"))
    counted = sum(len(load(n)) for n in names)
    assert counted >= 30, counted


async def test_generate_text_capture() -> None:
    koine = client_for(first("generate-text.txt"))
    result = await koine.generate_text(prompt="Hello gateway")
    assert seen[-1].url.path == "/generate-text"
    assert seen[-1].headers["authorization"] == "Bearer capture-key"
    assert result.text == "Echo: Hello gateway"
    assert result.usage.total_tokens == 9
    assert result.session_id == "0f03b9c2-4f9e-45b6-b166-456543959148"


async def test_generate_object_capture() -> None:
    class Address(BaseModel):
        city: str
        zip: str | None = None

    class Person(BaseModel):
        name: str
        age: int
        tags: list[str] = []
        role: str | None = None
        address: Address | None = None

    koine = client_for(first("generate-object.txt"))
    result = await koine.generate_object(prompt="x", schema=Person)
    assert result.object.tags == ["example"] * 3
    assert json.loads(result.raw_text)["age"] == 1


async def test_unicode_object_capture() -> None:
    ex = first("generate-object-pydantic-refs.txt")
    koine = client_for(ex)
    result = await koine.generate_object(prompt="x", schema=dict[str, Any])
    assert "🚀" in result.object["name"]


async def test_health_capture() -> None:
    koine = client_for(first("health.txt"))
    health = await koine.health()
    assert health.healthy
    assert health.concurrency is not None
    assert (health.concurrency.streaming.limit, health.concurrency.non_streaming.limit) == (3, 5)


@pytest.mark.parametrize(
    ("name", "code", "status"),
    [
        ("error-400-bad-schema.txt", "VALIDATION_ERROR", 400),
        ("error-400-validation.txt", "VALIDATION_ERROR", 400),
        ("error-400-no-tools-available.txt", "NO_TOOLS_AVAILABLE", 400),
        ("error-401-missing-auth.txt", "AUTH_MISSING", 401),
        ("error-403-wrong-key.txt", "AUTH_INVALID", 403),
        ("error-404.txt", "NOT_FOUND", 404),
        ("error-500-cli-exit.txt", "CLI_EXIT_ERROR", 500),
        ("error-500-generate-object-badjson.txt", "INTERNAL_ERROR", 500),
        ("error-500-is-error.txt", "CLI_EXIT_ERROR", 500),
        ("error-500-malformed-json.txt", "INTERNAL_ERROR", 500),
        ("error-500-parse.txt", "PARSE_ERROR", 500),
        ("error-500-prompt-too-large.txt", "INTERNAL_ERROR", 500),
    ],
)
async def test_error_captures(name: str, code: str, status: int) -> None:
    ex = first(name)
    koine = client_for(ex)
    with pytest.raises(KoineError) as info:
        await koine.generate_text(prompt="x")
    assert (info.value.code, info.value.status) == (code, status)
    if code == "VALIDATION_ERROR":
        assert info.value.raw_text is not None and json.loads(info.value.raw_text)


@pytest.mark.parametrize("name", ["error-429-concurrency-generate.txt"])
async def test_429_capture(name: str) -> None:
    ex = next(e for e in load(name) if e.status == 429)
    koine = client_for(ex)
    with pytest.raises(KoineError) as info:
        await koine.generate_text(prompt="x")
    assert (info.value.code, info.value.status, info.value.retry_after) == (
        "CONCURRENCY_LIMIT_ERROR",
        429,
        5.0,
    )


async def test_429_stream_capture() -> None:
    ex = next(e for e in load("error-429-concurrency-stream.txt") if e.status == 429)
    koine = client_for(ex)
    with pytest.raises(KoineError) as info:
        async with koine.stream_text(prompt="x") as r:
            await r.text()
    assert (info.value.code, info.value.retry_after) == ("CONCURRENCY_LIMIT_ERROR", 5.0)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("stream.txt", None),
        ("stream-nopartial.txt", "Echo: no partials"),
        ("stream-raw-chunked.txt", "Echo: raw framing"),
        ("stream-rawline.txt", "this line is not JSON ([[rawline]] directive)Echo: odd output"),
        (
            "stream-unicode.txt",
            "Echo: Say hi | unicode: héllo wörld — 你好，世界 — こんにちは — 🚀✨👩‍💻",
        ),
    ],
)
async def test_stream_captures(name: str, text: str | None) -> None:
    ex = first(name, "/stream")
    koine = client_for(ex)
    async with koine.stream_text(prompt="x") as r:
        chunks = [c async for c in r.text_stream]
        full = await r.text()
        sid = await r.session_id()
    assert "".join(chunks) == full
    if text is not None:
        assert full == text
    # the resumable id is result's, never the provisional session event's
    result_ids = re.findall(rb'event: result\ndata: \{"sessionId":"([^"]+)"', ex.body)
    assert sid == result_ids[0].decode()
    assert r.provisional_session_id != sid


async def test_stream_429_first_exchange_succeeds() -> None:
    ex = first("error-429-concurrency-stream.txt", "/stream")
    koine = client_for(ex)
    async with koine.stream_text(prompt="x") as r:
        assert await r.text() == "Echo: first slow stream"


async def test_multiturn_capture_resumed_session() -> None:
    ex = first("session-multiturn.txt", "/stream")
    koine = client_for(ex)
    async with koine.stream_text(prompt="x", session_id="03a22471") as r:
        text = await r.text()
        assert r.provisional_session_id == await r.session_id()
    assert "previous: What is my name?" in text


@pytest.mark.parametrize(
    ("name", "received"),
    [("stream-error-fail.txt", ""), ("stream-error-midstream.txt", "Echo: one two")],
)
async def test_stream_error_captures(name: str, received: str) -> None:
    koine = client_for(first(name))
    async with koine.stream_text(prompt="x") as r:
        with pytest.raises(KoineError) as info:
            async for _ in r.text_stream:
                pass
        assert info.value.code == "CLI_EXIT_ERROR"
        assert r.received_text == received
        for call in (r.text, r.usage, r.session_id):
            with pytest.raises(KoineError):
                await call()


async def test_stream_object_capture() -> None:
    koine = client_for(first("stream-object.txt"))
    async with koine.stream_object(prompt="x", schema=Recipe) as r:
        partials = [p async for p in r.partial_object_stream]
        recipe = await r.object()
    assert recipe.title == "example"
    assert len(recipe.ingredients) == 2
    assert len(partials) >= 10
    assert partials[1].title == "exa"  # a cut string shows its prefix
    assert [len(p.ingredients or []) for p in partials] == sorted(
        len(p.ingredients or []) for p in partials
    )


async def test_stream_object_resumed_capture() -> None:
    class Flag(BaseModel):
        ok: bool
        n: int

    koine = client_for(first("stream-object-resumed-session.txt"))
    async with koine.stream_object(prompt="x", schema=Flag, session_id="03a2") as r:
        assert await r.object() == Flag(ok=True, n=1)
        assert await r.session_id() == "03a22471-42cf-4eb8-871e-45e671f51abf"


async def test_stream_object_fence_capture() -> None:
    koine = client_for(first("stream-object-warning-fence.txt"))
    async with koine.stream_object(prompt="x", schema=Weather) as r:
        assert await r.object() == Weather(city="example", temp=1.5)
    assert [w.code for w in r.warnings] == ["EXTRACTION_FALLBACK"]


async def test_stream_object_badjson_capture() -> None:
    koine = client_for(first("stream-object-error-badjson.txt"))
    async with koine.stream_object(prompt="x", schema=Weather) as r:
        with pytest.raises(KoineError) as info:
            await r.object()
    assert info.value.code == "PARSE_ERROR"


async def test_stream_object_midstream_error_capture() -> None:
    koine = client_for(first("stream-object-error-midstream.txt"))
    async with koine.stream_object(prompt="x", schema=Weather) as r:
        seen: list[Any] = []
        with pytest.raises(KoineError) as info:
            async for p in r.partial_object_stream:
                seen.append(p)
        assert info.value.code == "CLI_EXIT_ERROR"
        assert r.latest_partial is not None and r.latest_partial.city == "ex"
        assert seen and seen[-1].city == "ex"


def test_captures_ship_with_the_repository() -> None:
    assert len(list(SAMPLES.glob("*.txt"))) >= 30
