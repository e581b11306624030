"""Reliability: the auth key stays secret (repr/str of every object, errors, DEBUG logs of every
logger including httpx/httpcore), unsafe base URLs are refused, plain http off loopback warns."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from koine_sdk import KoineConfig, KoineError, create_koine, create_koine_sync
from koine_sdk.testing import Fault


class Pet(BaseModel):
    name: str
    age: int


class _All(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text}")


@pytest.fixture
def all_logs() -> Iterator[_All]:
    """Every record of every logger at DEBUG (httpx, httpcore, asyncio, koine_sdk, ...)."""
    handler = _All()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    named = [logging.getLogger(n) for n in ("httpx", "httpcore", "koine_sdk", "asyncio")]
    levels = [lg.level for lg in named]
    for lg in named:
        lg.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)
    for lg, level in zip(named, levels, strict=True):
        lg.setLevel(level)


def _faults() -> list[Fault]:
    return [
        Fault.http_error(502, "html"),
        Fault.unauthorized(),
        Fault.forbidden(),
        Fault.rate_limited(),
        Fault.drop(after=1),
        Fault.malformed_line(after=1),
        Fault.cli_error(after=1),
        Fault.invalid_object(),
        Fault.close_before_headers(),
    ]


async def _async_run(gw: Any) -> list[Any]:
    seen: list[Any] = []
    async with create_koine(base_url=gw.base_url, auth_key=gw.auth_key, timeout=5) as koine:
        seen += [koine, koine.config]
        seen.append(await koine.generate_text(prompt="ok"))
        seen.append(await koine.generate_object(prompt="ok", schema=Pet))
        seen.append(await koine.health())
        async with koine.stream_text(prompt="ok") as r:
            await r.text()
            seen += [r, await r.usage()]
        for fault in _faults():
            gw.enqueue(fault)
            try:
                if fault == Fault.invalid_object():
                    async with koine.stream_object(prompt="p", schema=Pet) as o:
                        seen.append(o)
                        await o.object()
                else:
                    async with koine.stream_text(prompt="one two three") as r:
                        seen.append(r)
                        await r.text()
            except KoineError as exc:
                seen.append(exc)
    return seen


def _secrets_in(obj: Any, key: str) -> list[str]:
    found: list[str] = []
    texts = [repr(obj), str(obj)]
    if isinstance(obj, KoineError):
        texts += [obj.message, obj.raw_text or "", repr(pickle.loads(pickle.dumps(obj)))]
        texts += [repr(obj.__cause__), str(obj.hint)]
    for text in texts:
        if key in text:
            found.append(text)
    return found


def test_key_never_in_repr_str_errors_or_debug_logs(koine_gateway: Any, all_logs: _All) -> None:
    key = koine_gateway.auth_key
    seen = asyncio.run(_async_run(koine_gateway))
    with create_koine_sync(base_url=koine_gateway.base_url, auth_key=key, timeout=5) as sync:
        seen += [sync, sync.config, sync.generate_text(prompt="ok")]
        koine_gateway.enqueue(Fault.forbidden(), Fault.drop(after=1))
        for _ in range(2):
            try:
                with sync.stream_text(prompt="one two three") as r:
                    seen.append(r)
                    r.text()
            except KoineError as exc:
                seen.append(exc)
    codes = {e.code for e in seen if isinstance(e, KoineError)}
    assert {"HTTP_ERROR", "AUTH_MISSING", "AUTH_INVALID", "CONCURRENCY_LIMIT_ERROR"} <= codes
    assert {"STREAM_INCOMPLETE", "SSE_PARSE_ERROR", "CLI_EXIT_ERROR", "NETWORK_ERROR"} <= codes
    assert "VALIDATION_ERROR" in codes
    leaks = [text for obj in seen for text in _secrets_in(obj, key)]
    assert not leaks, leaks
    # httpx/httpcore did log at DEBUG (so the check below looked at something)
    assert any(line.startswith("httpcore") for line in all_logs.lines)
    assert any(line.startswith("httpx") for line in all_logs.lines)
    leaked = [line for line in all_logs.lines if key in line]
    assert not leaked, leaked[:3]
    # the gateway did receive it (the check is not vacuous)
    assert any(r.headers.get("authorization") == f"Bearer {key}" for r in koine_gateway.requests)


def test_config_repr_hides_the_key() -> None:
    config = KoineConfig("http://127.0.0.1:3100", "sk-very-secret")
    assert "sk-very-secret" not in repr(config) + str(config) + repr(config.validated())
    client = create_koine(config)
    assert "sk-very-secret" not in repr(client) + str(client) + repr(client._transport)  # pyright: ignore[reportPrivateUsage]


@pytest.mark.parametrize(
    ("base_url", "needle"),
    [
        ("http://admin:sk-very-secret@gateway.example.com", "credentials"),
        ("https://sk-very-secret@gateway.example.com", "credentials"),
        ("http://:sk-very-secret@127.0.0.1:3100", "credentials"),
        ("ftp://gateway.example.com", "http"),
        ("file:///etc/passwd", "http"),
        ("javascript:alert(1)", "http"),
        ("gateway.example.com:3100", "http"),
        ("//gateway.example.com", "http"),
    ],
)
@pytest.mark.parametrize("client", ["async", "sync"])
def test_unsafe_base_url_is_refused(base_url: str, needle: str, client: str) -> None:
    factory: Any = create_koine if client == "async" else create_koine_sync
    with pytest.raises(KoineError) as info:
        factory(base_url=base_url, auth_key="k")
    assert info.value.code == "INVALID_CONFIG"
    assert needle in info.value.message
    assert "sk-very-secret" not in str(info.value) + repr(info.value)


@pytest.mark.parametrize(
    ("base_url", "warns"),
    [
        ("http://gateway.example.com", True),
        ("http://10.0.0.7:3100", True),
        ("http://[2001:db8::1]:3100", True),
        ("http://127.0.0.1:3100", False),
        ("http://127.8.9.10", False),
        ("http://[::1]:3100", False),
        ("http://localhost:3100", False),
        ("http://api.localhost", False),
        ("https://gateway.example.com", False),
    ],
)
@pytest.mark.parametrize("client", ["async", "sync"])
def test_plain_http_off_loopback_warns(
    base_url: str, warns: bool, client: str, caplog: pytest.LogCaptureFixture
) -> None:
    factory: Any = create_koine if client == "async" else create_koine_sync
    with caplog.at_level(logging.WARNING, logger="koine_sdk"):
        made = factory(base_url=base_url, auth_key="sk-very-secret")
    found = [r for r in caplog.records if "plain http" in r.getMessage()]
    assert len(found) == (1 if warns else 0), [r.getMessage() for r in caplog.records]
    assert "sk-very-secret" not in caplog.text
    if client == "sync":
        made.close()


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


async def test_key_not_reachable_through_the_exception_chain(
    koine_gateway: Any, unused_tcp_port: int
) -> None:
    """httpx exceptions hold the request, whose headers hold the key: a KoineError must not
    keep them as its __cause__ or __context__ (a debugger or error reporter walks the chain)."""
    key = "chain-secret-key-123"
    failures: list[BaseException] = []
    async with create_koine(base_url=f"http://127.0.0.1:{unused_tcp_port}", auth_key=key) as k:
        with pytest.raises(KoineError) as info:
            await k.generate_text(prompt="x")
        failures.append(info.value)
        with pytest.raises(KoineError) as info:
            async with k.stream_text(prompt="x") as r:
                await r.text()
        failures.append(info.value)
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, timeout=0.3
    ) as k:
        koine_gateway.inject(Fault.drop(after=1))
        with pytest.raises(KoineError) as info:
            async with k.stream_text(prompt="a b c") as r:
                await r.text()
        failures.append(info.value)
        koine_gateway.inject(Fault.slow_first_byte(2.0))
        with pytest.raises(KoineError) as info:
            await k.generate_text(prompt="slow")
        failures.append(info.value)
    codes = [f.code for f in failures if isinstance(f, KoineError)]
    assert codes == ["NETWORK_ERROR", "NETWORK_ERROR", "STREAM_INCOMPLETE", "REQUEST_TIMEOUT"]
    for failure in failures:
        for link in _chain(failure):
            assert not isinstance(link, httpx.HTTPError), (failure, link)
