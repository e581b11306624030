"""The public surface, pinned: what each public module exports, the seam the Jupyter half uses,
argument validation at the edges, the bounded caches and the version in one place."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import importlib
import math
import pkgutil
import threading
import weakref
from typing import Any

import pytest
from pydantic import BaseModel

import koine_jupyter
import koine_sdk
from koine_sdk import (
    KoineClient,
    KoineConfig,
    KoineError,
    SyncKoineClient,
    create_koine,
    create_koine_sync,
)
from koine_sdk._objects._schema_views import CACHE_SIZE, parser_for, partial_type
from koine_sdk.errors import _parse_retry_after  # pyright: ignore[reportPrivateUsage]
from koine_sdk.testing import Fault

PINNED: dict[str, list[str]] = {
    "koine_sdk": [
        "ConcurrencySlots", "Endpoint", "ErrorCode", "GatewayConcurrency", "GenerateObjectResult",
        "GenerateTextResult", "HealthStatus", "KoineAuthError", "KoineClient", "KoineConfig",
        "KoineConnectionError", "KoineError", "KoineRateLimitError", "KoineRequest",
        "KoineResponseError", "KoineTimeoutError", "KoineValidationError",
        "KoineUsage", "LoopThread", "REPLAY_MODES", "ReplayMode", "ResponseLimits",
        "StreamObjectResult",
        "StreamTextResult",
        "StreamWarning",
        "SyncKoineClient", "SyncStreamObjectResult", "SyncStreamTextResult", "__version__",
        "create_koine", "create_koine_sync", "json_schema", "replay_mode",
    ],
    "koine_sdk.cli": ["main"],
    "koine_sdk.client": ["KoineClient", "StreamObjectResult", "StreamTextResult", "create_koine"],
    "koine_sdk.errors": [
        "KNOWN_ERROR_CODES", "ErrorCode", "KoineAuthError", "KoineConnectionError", "KoineError",
        "KoineRateLimitError", "KoineResponseError", "KoineTimeoutError", "KoineValidationError",
        "to_error_code",
    ],
    "koine_sdk.ledger": [
        "ENV_LEDGER", "KEY_FIELDS", "MEMORY", "ClaimResult", "Ledger", "LedgerRecord",
        "LedgerSpec", "LedgerWarning", "RequestShape", "canonical_json",
        "content_hash", "default_location", "open_ledger", "process_ledger",
        "request_key", "request_keys",
    ],
    "koine_sdk.sync": [
        "LoopThread", "SyncKoineClient", "SyncStreamObjectResult", "SyncStreamTextResult",
        "create_koine_sync",
    ],
    "koine_sdk.types": [
        "ConcurrencySlots", "GatewayConcurrency", "GenerateObjectResult", "GenerateTextResult",
        "HealthStatus", "KoineUsage",
    ],
    "koine_sdk.testing": [
        "DIRECTIVES", "Fault", "FaultKind", "GatewaySettings", "LocalGateway", "RecordedRequest",
        "Reply", "example_for_schema", "partial_parse", "settings_from_env",
    ],
}  # fmt: skip


JUPYTER_PINNED: dict[str, list[str]] = {
    "koine_jupyter": [
        "FrameView", "KoineAnswer", "ObjectView", "TextView", "aclassify", "aextract",
        "agenerate", "choose_mode", "classify", "clear_cache", "extract", "flatten_record",
        "generate", "load_ipython_extension", "show_stream", "to_dataframe",
        "unload_ipython_extension",
    ],
    "koine_jupyter.extraction": [
        "BudgetExceededError", "DEFAULT_PROMPT", "Clients", "Estimate", "OnInterrupt",
        "VerbOptions", "aclassify",
        "aextract", "agenerate", "classify", "clear_cache", "estimate", "extract", "generate",
        "history", "last_result", "parquet_schema", "retry_failed", "totals",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(JUPYTER_PINNED))
def test_the_verbs_are_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(JUPYTER_PINNED[name])
    for attr in module.__all__:
        assert hasattr(module, attr), attr


def _public_modules(package: Any) -> list[str]:
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", sorted(PINNED))
def test_all_of_each_public_sdk_module_is_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert sorted(module.__all__) == sorted(PINNED[name])
    for attr in module.__all__:
        assert hasattr(module, attr), attr


def test_every_public_sdk_module_is_pinned() -> None:
    assert sorted(_public_modules(koine_sdk)) == sorted(PINNED)


@pytest.mark.parametrize("name", _public_modules(koine_jupyter))
def test_every_public_jupyter_module_lists_what_it_exports(name: str) -> None:
    # Not pinned here: the Jupyter half is being reshaped; its names only have to exist.
    module = importlib.import_module(name)
    assert isinstance(module.__all__, list)
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"


def test_one_object_per_name() -> None:
    from koine_sdk import sync

    assert koine_sdk.LoopThread is sync.LoopThread
    assert koine_sdk.SyncKoineClient is sync.SyncKoineClient


def test_version_in_one_place(koine_gateway: Any) -> None:
    from koine_sdk import _version

    assert koine_sdk.__version__ == _version.__version__
    with create_koine_sync(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        koine.health()
    agent = koine_gateway.requests[-1].headers["user-agent"]
    assert agent == f"koine-sdk-python/{koine_sdk.__version__}"


# -- configuration and arguments --------------------------------------------------------------


@pytest.mark.parametrize("config", [{"base_url": "http://h", "auth_key": "k"}, "http://h", 3])
def test_create_koine_sync_checks_its_config_type(config: Any) -> None:
    with pytest.raises(KoineError) as info:
        create_koine_sync(config)
    assert info.value.code == "INVALID_CONFIG"
    assert "KoineConfig" in info.value.message


@pytest.mark.parametrize("bad", [0, -1, 0.0, math.nan, math.inf, True, "5"])
def test_per_call_timeout_is_validated(bad: Any, koine_gateway: Any) -> None:
    with create_koine_sync(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        calls = [
            lambda: koine.generate_text(prompt="x", timeout=bad),
            lambda: koine.generate_object(prompt="x", schema=dict, timeout=bad),
            lambda: koine.stream_text(prompt="x", timeout=bad),
            lambda: koine.stream_object(prompt="x", schema=dict, timeout=bad),
            lambda: koine.health(timeout=bad),
        ]
        for call in calls:
            with pytest.raises(KoineError) as info:
                call()
            assert info.value.code == "INVALID_ARGUMENT"
            assert "timeout" in info.value.message
        assert koine.generate_text(prompt="ok", timeout=2).text == "Echo: ok"
    assert [r.json["prompt"] for r in koine_gateway.requests] == ["ok"]


@pytest.mark.parametrize("bad", [0, -0.5, math.nan, math.inf, True, "1"])
def test_heartbeat_seconds_are_validated(bad: Any, koine_sync: SyncKoineClient) -> None:
    with koine_sync.stream_text(prompt="hi") as r:
        with pytest.raises(KoineError) as info:
            r.iter_with_heartbeat(bad)
        assert info.value.code == "INVALID_ARGUMENT"
        assert "".join(c for c in r.iter_with_heartbeat(0.5) if c) == "Echo: hi"


def test_sync_stream_misuse_names_with(koine_sync: SyncKoineClient) -> None:
    stream = koine_sync.stream_text(prompt="hi")
    for use in (lambda: list(stream.text_stream), stream.text, stream.usage, stream.session_id):
        with pytest.raises(KoineError) as info:
            use()
        assert info.value.code == "INVALID_ARGUMENT"
        assert "inside 'with'" in info.value.message and "async with" not in info.value.message
    with stream as r:  # still usable the right way
        assert r.text() == "Echo: hi"


async def test_async_stream_misuse_names_async_with(koine: KoineClient) -> None:
    with pytest.raises(KoineError) as info:
        await koine.stream_text(prompt="hi").text()
    assert "'async with'" in info.value.message


# -- Retry-After --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), ("0", 0.0), ("2.5", 2.5), ("-3", None), ("nan", None), ("inf", None),
     ("1e999", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), (None, None)],
)  # fmt: skip
def test_retry_after_values(header: str | None, seconds: float | None) -> None:
    assert _parse_retry_after(header) == seconds


async def test_a_retry_after_beyond_60_s_is_raised_not_slept_on(koine_gateway: Any) -> None:
    koine_gateway.enqueue(Fault.rate_limited(retry_after=120))
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, max_retries=3
    ) as koine:
        began = asyncio.get_running_loop().time()
        with pytest.raises(KoineError) as info:
            await koine.generate_text(prompt="busy")
        assert asyncio.get_running_loop().time() - began < 1.0
    assert (info.value.code, info.value.retry_after) == ("CONCURRENCY_LIMIT_ERROR", 120.0)
    assert len(koine_gateway.requests) == 1


async def test_a_non_finite_retry_after_falls_back_to_backoff(koine_gateway: Any) -> None:
    busy = Fault.rate_limited(retry_after=None)
    odd = Fault(busy.kind, status=429, body=busy.body, headers=(("retry-after", "inf"),))
    koine_gateway.enqueue(odd)
    async with create_koine(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key, max_retries=1
    ) as koine:
        assert (await koine.generate_text(prompt="again")).text == "Echo: again"
    assert len(koine_gateway.requests) == 2


# -- the seam for the Jupyter half ------------------------------------------------------------


def test_run_hands_over_the_async_client_on_its_loop(koine_sync: SyncKoineClient) -> None:
    seen: list[Any] = []

    async def work(client: KoineClient) -> str:
        seen.append((client, asyncio.get_running_loop()))
        return (await client.generate_text(prompt="via run")).text

    assert koine_sync.run(work) == "Echo: via run"
    client, loop = seen[0]
    assert isinstance(client, KoineClient) and loop is koine_sync.loop()
    assert koine_sync.loop().is_running() and koine_sync.loop() is koine_sync.loop()


def test_run_keeps_the_callers_context(koine_sync: SyncKoineClient) -> None:
    cell: contextvars.ContextVar[str] = contextvars.ContextVar("cell", default="none")

    async def read(_: KoineClient) -> str:
        return cell.get()

    def in_thread(name: str) -> str:
        cell.set(name)
        return koine_sync.run(read)

    results: list[str] = []
    threads = [threading.Thread(target=lambda n=n: results.append(in_thread(n))) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert sorted(results) == ["a", "b"]


async def test_arun_from_another_loop_and_cancellation(
    koine_sync: SyncKoineClient, koine_gateway: Any
) -> None:
    assert asyncio.get_running_loop() is not koine_sync.loop()
    result = await koine_sync.arun(lambda k: k.generate_text(prompt="via arun"))
    assert result.text == "Echo: via arun"
    task = asyncio.create_task(koine_sync.arun(lambda k: k.generate_text(prompt="[[delay=5]]")))
    assert await asyncio.to_thread(koine_gateway.wait_for_requests, 2, 5.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the work was cancelled on the client's loop: its connection closed
    assert await asyncio.to_thread(koine_gateway.wait_for_disconnect, 3.0)


def test_arun_on_the_clients_own_loop_runs_directly(koine_sync: SyncKoineClient) -> None:
    async def outer(_: KoineClient) -> str:
        inner = await koine_sync.arun(lambda k: k.generate_text(prompt="nested"))
        return inner.text

    assert koine_sync.run(outer) == "Echo: nested"


def test_deprecated_accessors_still_work(koine_sync: SyncKoineClient) -> None:
    with pytest.warns(DeprecationWarning, match="async_client is deprecated"):
        assert isinstance(koine_sync.async_client, KoineClient)
    with pytest.warns(DeprecationWarning, match="loop_thread is deprecated"):
        assert koine_sync.loop_thread.loop() is koine_sync.loop()


# -- bounded caches ---------------------------------------------------------------------------


def _define(version: int) -> type[BaseModel]:
    """A notebook cell defining its models, run again and again."""

    class Item(BaseModel):
        name: str
        qty: int

    class Basket(BaseModel):
        items: list[Item]
        note: str = f"version {version}"

    return Basket


@pytest.mark.slow
def test_redefining_a_model_1000_times_keeps_memory_bounded() -> None:
    from koine_sdk._objects import _schema_views as _partial

    first: weakref.ref[type[BaseModel]] | None = None
    for i in range(1000):
        basket = _define(i)
        parser_for(basket).parse({"items": [{"name": "a"}]})
        partial_type(list[basket])
        if first is None:
            first = weakref.ref(basket)
        del basket
    gc.collect()
    assert first is not None and first() is None  # the first version was let go
    for cache in (_partial._cache, _partial._adapter_cache, _partial._parser_cache):  # pyright: ignore[reportPrivateUsage]
        assert len(cache) <= 2 * CACHE_SIZE
    assert not _partial._forward_ns  # pyright: ignore[reportPrivateUsage]


def test_config_repr_does_not_leak_through_pickled_errors() -> None:
    config = KoineConfig("http://127.0.0.1:1", "secret-key-123")
    assert "secret-key-123" not in repr(config)
