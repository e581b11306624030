"""The async client over real HTTP against the local gateway."""

from __future__ import annotations

import asyncio
import json
import logging
from enum import Enum
from typing import Any

import pytest
from pydantic import BaseModel

from koine_sdk import (
    GenerateObjectResult,
    GenerateTextResult,
    KoineClient,
    KoineConfig,
    KoineError,
    KoineUsage,
    create_koine,
)


class Ingredient(BaseModel):
    name: str
    grams: float


class Recipe(BaseModel):
    title: str
    servings: int
    ingredients: list[Ingredient]


class Role(Enum):
    admin = "admin"
    user = "user"


class Person(BaseModel):
    name: str
    age: int
    role: Role
    nick: str | None = None


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"base_url": "", "auth_key": "k"}, "base_url is required"),
        ({"base_url": "localhost:3100", "auth_key": "k"}, "http"),
        ({"base_url": "ftp://h", "auth_key": "k"}, "http"),
        ({"base_url": "http://h", "auth_key": ""}, "auth_key is required"),
        ({"base_url": "http://h", "auth_key": "k", "timeout": 0}, "timeout"),
        ({"base_url": "http://h", "auth_key": "k", "timeout": -1.0}, "timeout"),
        ({"base_url": "http://h", "auth_key": "k", "timeout": float("nan")}, "timeout"),
        ({"base_url": "http://user:pw@h", "auth_key": "k"}, "credentials"),
        ({"base_url": "http://h:99999", "auth_key": "k"}, "valid URL"),
        ({"base_url": "http://h", "auth_key": "k", "model": ""}, "model"),
    ],
)
def test_invalid_config(
    kwargs: dict[str, Any], needle: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KOINE_BASE_URL", raising=False)
    monkeypatch.delenv("KOINE_AUTH_KEY", raising=False)
    with pytest.raises(KoineError) as info:
        create_koine(**kwargs)
    assert info.value.code == "INVALID_CONFIG"
    assert needle in info.value.message
    assert "pw" not in str(info.value)


def test_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOINE_BASE_URL", "http://127.0.0.1:3100/")
    monkeypatch.setenv("KOINE_AUTH_KEY", "env-secret-key")
    monkeypatch.setenv("KOINE_MODEL", "haiku")
    client = create_koine()
    assert client.config.base_url == "http://127.0.0.1:3100"
    assert client.config.model == "haiku"
    assert "env-secret-key" not in repr(client) + repr(client.config) + str(client.config)
    # explicit keywords win over the environment
    assert create_koine(base_url="http://127.0.0.1:9").config.base_url == "http://127.0.0.1:9"


def test_config_and_keywords_conflict() -> None:
    with pytest.raises(KoineError) as info:
        create_koine(KoineConfig("http://h", "k"), model="x")  # type: ignore[call-overload]
    assert info.value.code == "INVALID_CONFIG"


def test_plain_http_to_remote_host_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="koine_sdk"):
        create_koine(base_url="http://gateway.example.com", auth_key="top-secret")
        create_koine(base_url="http://127.0.0.1:3100", auth_key="top-secret")
        create_koine(base_url="https://gateway.example.com", auth_key="top-secret")
    warnings = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(warnings) == 1
    assert "top-secret" not in caplog.text


# -- text -------------------------------------------------------------------------------------


async def test_generate_text(koine: KoineClient, koine_gateway: Any) -> None:
    result = await koine.generate_text(prompt="Hello gateway")
    assert isinstance(result, GenerateTextResult)
    assert result.text == "Echo: Hello gateway"
    assert isinstance(result.usage, KoineUsage)
    assert result.usage.total_tokens == result.usage.input_tokens + result.usage.output_tokens
    assert result.session_id
    request = koine_gateway.requests[-1]
    assert request.path == "/generate-text"
    assert request.headers["authorization"] == f"Bearer {koine_gateway.auth_key}"
    assert request.headers["content-type"].startswith("application/json")
    assert request.json == {"prompt": "Hello gateway"}  # absent fields omitted, never null


async def test_wire_fields_are_camel_case(koine: KoineClient, koine_gateway: Any) -> None:
    result = await koine.generate_text(
        prompt="[[args]] show me the args",
        system="Be brief.",
        model="haiku",
        allowed_tools=["Read", "Glob"],
    )
    assert koine_gateway.requests[-1].json == {
        "prompt": "[[args]] show me the args",
        "system": "Be brief.",
        "model": "haiku",
        "allowedTools": ["Read", "Glob"],
    }
    args = json.loads(result.text)
    assert args["model"] == "haiku"
    assert args["system"] == "Be brief."
    assert args["allowedTools"] == ["Read", "Glob"]


@pytest.mark.parametrize("suffix", ["", "/"])
async def test_base_url_with_or_without_trailing_slash(koine_gateway: Any, suffix: str) -> None:
    async with create_koine(
        base_url=koine_gateway.base_url + suffix, auth_key=koine_gateway.auth_key
    ) as koine:
        await koine.generate_text(prompt="x")
    assert koine_gateway.requests[-1].path == "/generate-text"


async def test_config_model_and_per_call_override(koine_gateway: Any) -> None:
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, model="sonnet"
    ) as koine:
        await koine.generate_text(prompt="a")
        assert koine_gateway.requests[-1].json["model"] == "sonnet"
        await koine.generate_text(prompt="b", model="haiku")
        assert koine_gateway.requests[-1].json["model"] == "haiku"


async def test_bad_arguments_are_typed_errors(koine: KoineClient, koine_gateway: Any) -> None:
    before = len(koine_gateway.requests)
    for kwargs in (
        {"prompt": 42},
        {"prompt": "x", "allowed_tools": "Read"},
        {"prompt": "x", "allowed_tools": ["Read", 3]},
        {"prompt": "x", "system": 1},
    ):
        with pytest.raises(KoineError) as info:
            await koine.generate_text(**kwargs)
        assert info.value.code == "INVALID_ARGUMENT"
    assert len(koine_gateway.requests) == before  # nothing was sent


async def test_stream_text(koine: KoineClient) -> None:
    chunks: list[str] = []
    async with koine.stream_text(prompt="one two three [[chunks=3]]") as r:
        async for chunk in r.text_stream:
            chunks.append(chunk)
        text = await r.text()
        usage = await r.usage()
        session_id = await r.session_id()
    assert len(chunks) >= 3
    assert "".join(chunks) == text == "Echo: one two three"
    assert usage.total_tokens > 0
    assert session_id


async def test_stream_text_without_iterating(koine: KoineClient) -> None:
    async with koine.stream_text(prompt="just the text") as r:
        assert await r.text() == "Echo: just the text"
        # the deltas are still there for a late iteration
        assert "".join([c async for c in r.text_stream]) == "Echo: just the text"


async def test_multiturn_over_streams_uses_resumable_session_id(koine: KoineClient) -> None:
    async with koine.stream_text(prompt="My name is Ada") as r:
        await r.text()
        provisional = r.provisional_session_id
        resumable = await r.session_id()
    assert provisional and resumable and provisional != resumable
    async with koine.stream_text(prompt="What is my name?", session_id=resumable) as r2:
        text = await r2.text()
        assert r2.provisional_session_id == resumable
        assert await r2.session_id() == resumable
    assert "previous: My name is Ada" in text
    result = await koine.generate_text(prompt="And now?", session_id=resumable)
    assert "previous: What is my name?" in result.text
    assert result.session_id == resumable


async def test_stream_unicode(koine: KoineClient) -> None:
    async with koine.stream_text(prompt="Say hi [[unicode]] [[chunks=4]]") as r:
        text = await r.text()
    assert "你好，世界" in text and "👩‍💻" in text and "\ufffd" not in text


# -- objects ---------------------------------------------------------------------------------


async def test_generate_object(koine: KoineClient, koine_gateway: Any) -> None:
    result = await koine.generate_object(prompt="Give me a recipe", schema=Recipe)
    assert isinstance(result, GenerateObjectResult)
    assert isinstance(result.object, Recipe)
    assert json.loads(result.raw_text) == result.object.model_dump()
    sent = koine_gateway.requests[-1].json
    assert sent["schema"]["type"] == "object"
    assert set(sent["schema"]["properties"]) == {"title", "servings", "ingredients"}


async def test_generate_object_enum_and_optional(koine: KoineClient) -> None:
    result = await koine.generate_object(prompt="a person", schema=Person)
    assert isinstance(result.object, Person)
    assert result.object.role in (Role.admin, Role.user)


async def test_generate_object_list_schema(koine: KoineClient) -> None:
    result = await koine.generate_object(prompt="people [[items=3]]", schema=list[Person])
    assert len(result.object) == 3
    assert all(isinstance(p, Person) for p in result.object)


async def test_stream_object(koine: KoineClient) -> None:
    partials: list[Any] = []
    async with koine.stream_object(prompt="Give me a recipe [[items=3]]", schema=Recipe) as r:
        async for partial in r.partial_object_stream:
            partials.append(partial)
        recipe = await r.object()
        usage = await r.usage()
    assert isinstance(recipe, Recipe)
    assert len(recipe.ingredients) == 3
    assert len(partials) > 3
    assert len({type(p) for p in partials}) == 1  # one consistent partial type
    assert not isinstance(partials[0], Recipe)
    # fields appear as they arrive, and lists grow
    assert partials[0].ingredients is None
    counts = [len(p.ingredients or []) for p in partials]
    assert counts == sorted(counts) and counts[-1] == 3
    assert partials[-1].title == recipe.title
    assert usage.total_tokens > 0


async def test_stream_object_fence_fallback_warns(koine: KoineClient) -> None:
    class Weather(BaseModel):
        city: str
        temp: float

    async with koine.stream_object(prompt="weather [[fence]]", schema=Weather) as r:
        partials = [p async for p in r.partial_object_stream]
        weather = await r.object()
    assert weather.city
    assert [w.code for w in r.warnings] == ["EXTRACTION_FALLBACK"]
    assert len(partials) == 1  # the final object, shown once


# -- errors ----------------------------------------------------------------------------------


async def test_wrong_key_403(koine_gateway: Any) -> None:
    async with create_koine(base_url=koine_gateway.base_url, auth_key="wrong-key-123") as koine:
        with pytest.raises(KoineError) as info:
            await koine.generate_text(prompt="hi")
    err = info.value
    assert (err.code, err.status) == ("AUTH_INVALID", 403)
    assert "Invalid API key" in err.message and "auth_key" in err.message
    assert "wrong-key-123" not in str(err) + repr(err)


async def test_no_tools_available_400(koine: KoineClient, koine_gateway: Any) -> None:
    koine_gateway.configure(disallowed_tools=["Bash"])
    with pytest.raises(KoineError) as info:
        await koine.generate_text(prompt="hi", allowed_tools=["Bash"])
    assert (info.value.code, info.value.status) == ("NO_TOOLS_AVAILABLE", 400)
    with pytest.raises(KoineError) as info:
        async with koine.stream_text(prompt="hi", allowed_tools=["Bash"]) as r:
            await r.text()
    assert (info.value.code, info.value.status) == ("NO_TOOLS_AVAILABLE", 400)
    # a surviving tool is fine
    result = await koine.generate_text(prompt="[[args]]", allowed_tools=["Bash", "Read"])
    assert json.loads(result.text)["allowedTools"] == ["Read"]


async def test_cli_failure_generate(koine: KoineClient) -> None:
    with pytest.raises(KoineError) as info:
        await koine.generate_text(prompt="please [[fail]]")
    assert (info.value.code, info.value.status) == ("CLI_EXIT_ERROR", 500)


async def test_stream_error_midstream_keeps_text(koine: KoineClient) -> None:
    received: list[str] = []
    async with koine.stream_text(prompt="one two three four five [[fail-after=3]]") as r:
        with pytest.raises(KoineError) as info:
            async for chunk in r.text_stream:
                received.append(chunk)
        assert info.value.code == "CLI_EXIT_ERROR"
        assert "".join(received) == r.received_text == "Echo: one two"
        with pytest.raises(KoineError):
            await r.text()
        with pytest.raises(KoineError):
            await r.session_id()


async def test_stream_object_parse_error(koine: KoineClient) -> None:
    class Weather(BaseModel):
        city: str
        temp: float

    async with koine.stream_object(prompt="weather [[badjson]]", schema=Weather) as r:
        with pytest.raises(KoineError) as info:
            await r.object()
    assert info.value.code == "PARSE_ERROR"


async def test_concurrency_limit_429_and_retry(koine_gateway_factory: Any) -> None:
    gw = koine_gateway_factory(max_nonstreaming=1)
    async with create_koine(base_url=gw.base_url, auth_key=gw.auth_key) as koine:
        slow = asyncio.create_task(koine.generate_text(prompt="slow [[delay=0.6]]"))
        await asyncio.sleep(0.2)
        with pytest.raises(KoineError) as info:
            await koine.generate_text(prompt="second")
        assert (info.value.code, info.value.status) == ("CONCURRENCY_LIMIT_ERROR", 429)
        assert info.value.retry_after == 5
        await slow


async def test_network_error(unused_tcp_port: int) -> None:
    async with create_koine(
        base_url=f"http://127.0.0.1:{unused_tcp_port}", auth_key="k", timeout=5
    ) as koine:
        with pytest.raises(KoineError) as info:
            await koine.generate_text(prompt="hi")
    assert info.value.code == "NETWORK_ERROR"


async def test_health(koine: KoineClient) -> None:
    health = await koine.health()
    assert health.healthy
    assert health.concurrency is not None
    assert health.concurrency.streaming.limit >= 1


# -- connections -----------------------------------------------------------------------------


async def test_one_pooled_connection_for_sequential_calls(
    koine: KoineClient, koine_gateway: Any
) -> None:
    for i in range(10):
        await koine.generate_text(prompt=f"n{i}")
    async with koine.stream_text(prompt="a stream") as r:
        await r.text()
    await koine.generate_text(prompt="after the stream")
    peers = {req.client for req in koine_gateway.requests}
    assert len(peers) == 1, peers


async def test_an_idle_connection_is_not_reused_once_the_server_may_close_it(
    koine: KoineClient, koine_gateway: Any
) -> None:
    # Servers drop idle keep-alive connections after 5 s (Node, uvicorn); reusing one right at
    # that moment fails with "server disconnected". The pool lets them go a second earlier.
    from koine_sdk._transport import KEEPALIVE_EXPIRY

    assert KEEPALIVE_EXPIRY <= 4.0
    await koine.generate_text(prompt="first")
    await asyncio.sleep(KEEPALIVE_EXPIRY + 0.2)
    await koine.generate_text(prompt="after a pause")
    first, second = (req.client for req in koine_gateway.requests)
    assert first != second  # a fresh connection, not the expiring one


async def test_leaving_a_stream_early_closes_the_connection(
    koine: KoineClient, koine_gateway: Any
) -> None:
    async with koine.stream_text(prompt="a b c d e f g h [[slow=0.2]]") as r:
        async for _ in r.text_stream:
            break
    assert await asyncio.to_thread(koine_gateway.wait_for_disconnect, 2.0)
    # and the client still works
    assert (await koine.generate_text(prompt="next")).text == "Echo: next"


async def test_cancelling_the_task_closes_the_connection(
    koine: KoineClient, koine_gateway: Any
) -> None:
    async def consume() -> None:
        async with koine.stream_text(prompt="a b c d e f g h [[slow=0.2]]") as r:
            async for _ in r.text_stream:
                pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(koine_gateway.wait_for_disconnect, 2.0)


def test_client_survives_two_event_loops(koine_gateway: Any) -> None:
    koine = create_koine(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    assert asyncio.run(koine.generate_text(prompt="loop one")).text == "Echo: loop one"
    assert asyncio.run(koine.generate_text(prompt="loop two")).text == "Echo: loop two"
    asyncio.run(koine.aclose())


async def test_user_supplied_http_client(koine_gateway: Any) -> None:
    import httpx

    async with httpx.AsyncClient(headers={"X-Trace": "abc"}) as http:
        koine = create_koine(
            base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, http_client=http
        )
        await koine.generate_text(prompt="mine")
        await koine.aclose()
        assert not http.is_closed  # ours to close, not the SDK's
    assert koine_gateway.requests[-1].headers["x-trace"] == "abc"


async def test_closed_client_raises(koine_gateway: Any) -> None:
    koine = create_koine(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    await koine.aclose()
    with pytest.raises(KoineError) as info:
        await koine.generate_text(prompt="x")
    assert info.value.code == "CLIENT_CLOSED"


# -- retries (opt-in) --------------------------------------------------------------------------


async def test_no_retry_by_default(koine: KoineClient, koine_gateway: Any) -> None:
    from koine_sdk.testing import Fault

    koine_gateway.inject(Fault.rate_limited(retry_after=0))
    with pytest.raises(KoineError) as info:
        await koine.generate_text(prompt="busy")
    assert info.value.code == "CONCURRENCY_LIMIT_ERROR"
    assert len(koine_gateway.requests) == 1


async def test_max_retries_waits_retry_after(koine_gateway: Any) -> None:
    from koine_sdk.testing import Fault

    koine_gateway.enqueue(Fault.rate_limited(retry_after=0), Fault.rate_limited(retry_after=0))
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, max_retries=2
    ) as koine:
        result = await koine.generate_text(prompt="third time")
        assert result.text == "Echo: third time"
        assert len(koine_gateway.requests) == 3
        koine_gateway.enqueue(*[Fault.rate_limited(retry_after=0)] * 3)
        with pytest.raises(KoineError) as info:
            await koine.generate_text(prompt="too busy")
        assert info.value.code == "CONCURRENCY_LIMIT_ERROR"


async def test_max_retries_for_streams_before_any_event(koine_gateway: Any) -> None:
    from koine_sdk.testing import Fault

    koine_gateway.inject(Fault.rate_limited(retry_after=0))
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, max_retries=1
    ) as koine:
        async with koine.stream_text(prompt="streamed") as r:
            assert await r.text() == "Echo: streamed"
        # a stream that broke after events reached the user is never replayed
        before = len(koine_gateway.requests)
        koine_gateway.inject(Fault.drop(after=1))
        async with koine.stream_text(prompt="a b c d") as r:
            with pytest.raises(KoineError) as info:
                await r.text()
        assert info.value.code == "STREAM_INCOMPLETE"
        assert len(koine_gateway.requests) == before + 1


async def test_max_retries_on_connection_refused(unused_tcp_port: int) -> None:
    import time

    async with create_koine(
        base_url=f"http://127.0.0.1:{unused_tcp_port}", auth_key="k", max_retries=2
    ) as koine:
        start = time.monotonic()
        with pytest.raises(KoineError) as info:
            await koine.generate_text(prompt="x")
        elapsed = time.monotonic() - start
    assert info.value.code == "NETWORK_ERROR"
    assert 0.6 < elapsed < 3.0  # backed off 0.25 s, then 0.5 s


def test_invalid_max_retries() -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(KoineError) as info:
            create_koine(base_url="http://127.0.0.1:1", auth_key="k", max_retries=bad)  # type: ignore[arg-type]
        assert info.value.code == "INVALID_CONFIG"
