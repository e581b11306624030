"""Bulk extraction against the local gateway (real HTTP over loopback), limit 2."""

from __future__ import annotations

import asyncio
import importlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

from koine_jupyter.extraction import aextract, clear_cache, extract
from koine_sdk import KoineClient, SyncKoineClient, create_koine, create_koine_sync
from koine_sdk.testing import Fault, LocalGateway

LIMIT = 2


class Address(BaseModel):
    city: str
    zip: int


class Person(BaseModel):
    name: str
    age: int
    tags: list[str]
    address: Address


Factory = Callable[..., LocalGateway]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def gw(koine_gateway: LocalGateway) -> LocalGateway:
    koine_gateway.configure(max_nonstreaming=LIMIT)
    return koine_gateway


@pytest.fixture
def client(gw: LocalGateway) -> Iterator[SyncKoineClient]:
    c = create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key)
    yield c
    c.close()


def object_requests(gw: LocalGateway) -> int:
    return sum(1 for r in gw.requests if r.path == "/generate-object")


def last_result() -> Any:
    return importlib.import_module("koine_jupyter.extraction").last_result


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- shape of the result ---------------------------------------------------------------------


def test_series_index_order_errors_and_flattening(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    index = pd.Index([f"doc-{i}" for i in (7, 3, 11, 0, 5, 9, 2, 8)], name="doc")
    items = [1, 2, 3, 4, 5, 1, 2, 3]
    texts = [
        f"text {i} [[items={n}]]" + (" [[fail]]" if i in (2, 5) else "")
        for i, n in enumerate(items)
    ]
    texts[3] += " [[delay=0.2]]"  # a slow row: later rows finish first
    series = pd.Series(texts, index=index)
    df = extract(series, Person, "Extract the person: {text}", client=client, progress=False)

    assert df.index.equals(index)
    assert list(df.columns) == [
        "name",
        "age",
        "tags",
        "address.city",
        "address.zip",
        "error",
        "input_tokens",
        "output_tokens",
        "attempts",
        "answer_from",
    ]
    ok = df["error"].isna()
    assert ok.tolist() == [True, True, False, True, True, False, True, True]
    # Each row's own answer landed on its own index label (items=N gives N tags).
    for label, n, good in zip(index, items, ok, strict=True):
        if good:
            assert isinstance(df.loc[label, "tags"], list)
            assert len(df.loc[label, "tags"]) == n
    failed = df[~ok]
    assert failed["error"].str.startswith("CLI_EXIT_ERROR: ").all()
    assert failed[["name", "age", "tags", "address.city", "input_tokens"]].isna().all().all()
    # Ints stay ints: nullable Int64 where failed rows left holes.
    assert str(df["age"].dtype) == "Int64"
    assert str(df["address.zip"].dtype) == "Int64"
    assert str(df["input_tokens"].dtype) == "Int64"
    assert (df.loc[ok, "input_tokens"] > 0).all()
    # One request per row, each row's text sent with the prompt.
    assert object_requests(gw) == len(texts)
    sent = sorted(r.json["prompt"] for r in gw.requests if r.path == "/generate-object")
    assert sent == sorted(f"Extract the person: {t}" for t in texts)
    assert gw.peak["nonStreaming"] <= LIMIT
    stats = df.attrs["koine"]
    assert stats["succeeded"] == 6 and stats["failed"] == 2 and stats["requests"] == 8


def test_list_gets_range_index_and_dtypes_of_the_schema(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    df = extract([f"p{i}" for i in range(5)], Person, client=client, progress=False)
    assert df.index.equals(pd.RangeIndex(5))
    # Nullable dtypes even when nothing failed: the schema decides, not the data.
    assert str(df["age"].dtype) == "Int64"
    assert str(df["name"].dtype) == "string"
    assert str(df["input_tokens"].dtype) == "Int64"
    assert df["error"].isna().all()
    assert df["answer_from"].tolist() == ["request"] * 5
    assert df["attempts"].tolist() == [1] * 5
    assert df["tags"].map(type).eq(list).all()


def test_missing_and_blank_texts_fail_without_requests(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    series = pd.Series(
        ["a", None, float("nan"), "b", "", "  \n\t "], index=[10, 20, 30, 40, 50, 60]
    )
    df = extract(series, Address, client=client, progress=False)
    assert df["error"].isna().tolist() == [True, False, False, True, False, False]
    for label in (20, 30, 50, 60):
        assert df.loc[label, "error"].startswith("INVALID_ARGUMENT: ")
        assert df.loc[label, "answer_from"] == "not_sent" and pd.isna(df.loc[label, "input_tokens"])
    assert object_requests(gw) == 2


# -- concurrency ------------------------------------------------------------------------------


def test_limit_learned_from_health_is_used_and_never_exceeded(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    texts = [f"slow {i} [[delay=0.1]]" for i in range(8)]
    df = extract(texts, Address, client=client, progress=False)
    assert df["error"].isna().all()
    assert gw.peak["nonStreaming"] == LIMIT  # concurrent and used fully...
    assert gw.rejected == 0  # ...and never over (the gateway would answer 429)
    assert df.attrs["koine"]["gateways"][0]["limit"] == LIMIT


def test_concurrency_below_the_limit_is_used(gw: LocalGateway, client: SyncKoineClient) -> None:
    df = extract(
        [f"one {i} [[delay=0.05]]" for i in range(4)],
        Address,
        client=client,
        concurrency=1,
        progress=False,
    )
    assert df["error"].isna().all()
    assert gw.peak["nonStreaming"] == 1


def test_concurrency_above_the_limit_is_capped_by_health(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    df = extract(
        [f"capped {i} [[delay=0.05]]" for i in range(12)],
        Address,
        client=client,
        concurrency=8,
        progress=False,
    )
    assert df["error"].isna().all()
    assert gw.peak["nonStreaming"] == LIMIT and gw.rejected == 0
    assert df.attrs["koine"]["gateways"][0]["limit"] == LIMIT


def test_injected_429s_are_waited_out_and_retried(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    gw.enqueue(Fault.rate_limited(retry_after=1), Fault.rate_limited(retry_after=1))
    started = time.perf_counter()
    df = extract(
        [f"busy {i}" for i in range(6)],
        Address,
        client=client,
        concurrency=LIMIT,
        max_retry_after=0.2,
        progress=False,
    )
    elapsed = time.perf_counter() - started
    assert df["error"].isna().all()
    assert df.attrs["koine"]["throttled"] == 2
    assert object_requests(gw) == 6 + 2
    assert 0.2 <= elapsed < 2.0  # waited (capped Retry-After), not the full second twice


def test_too_much_concurrency_backs_off_instead_of_hammering(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    # Told 6 at once against a limit of 2 that /health does not tell: the gateway answers
    # 429s, the window settles below the level that failed.
    gw.configure(report_concurrency=False)
    texts = [f"over {i} [[delay=0.05]]" for i in range(24)]
    df = extract(texts, Address, client=client, concurrency=6, max_retry_after=0.05, progress=False)
    assert df["error"].isna().all()
    stats = df.attrs["koine"]
    assert stats["throttled"] == gw.rejected > 0
    assert gw.rejected <= 12  # a burst or two, not a 429 per row
    assert gw.peak["nonStreaming"] <= LIMIT


def test_429_retries_are_bounded(gw: LocalGateway, client: SyncKoineClient) -> None:
    gw.enqueue(*[Fault.rate_limited(retry_after=0)] * 3)
    df = extract(
        ["only row"], Address, client=client, max_retries=2, max_retry_after=0.01, progress=False
    )
    assert df.loc[0, "error"].startswith("CONCURRENCY_LIMIT_ERROR: ")
    assert object_requests(gw) == 3


# -- cache ------------------------------------------------------------------------------------


def test_rerun_hits_the_cache(gw: LocalGateway, client: SyncKoineClient) -> None:
    texts = [f"cache me {i}" for i in range(5)] + ["bad [[fail]]"]
    first = extract(texts, Person, client=client, progress=False)
    assert object_requests(gw) == 6
    second = extract(texts, Person, client=client, progress=False)
    assert object_requests(gw) == 6 + 1  # only the failed row is requested again
    assert second.attrs["koine"]["ledger_hits"] == 5
    fields = ["name", "age", "tags", "address.city", "address.zip", "error", "attempts"]
    pd.testing.assert_frame_equal(first[fields], second[fields])
    # Tokens are what this call paid: nothing for answers from the ledger.
    assert second["answer_from"].tolist() == ["ledger"] * 5 + ["request"]
    assert (second["input_tokens"].iloc[:5] == 0).all()
    # The cache hands out copies: editing a result does not edit the cache.
    second.loc[0, "tags"].append("edited")
    third = extract(texts[:1], Person, client=client, progress=False)
    assert "edited" not in third.loc[0, "tags"]
    # Another prompt, model or schema is another key; cache=False always asks.
    extract(texts[:2], Person, "Other prompt:", client=client, progress=False)
    assert object_requests(gw) == 7 + 2
    extract(texts[:2], Person, client=client, cache=False, progress=False)
    assert object_requests(gw) == 9 + 2
    extract(texts[:2], Person, client=client, model="haiku", progress=False)
    assert object_requests(gw) == 11 + 2
    extract(texts[:2], Person, client=client, system="Be brief.", progress=False)
    assert object_requests(gw) == 13 + 2


def test_changed_schema_is_another_request(gw: LocalGateway, client: SyncKoineClient) -> None:
    class Person2(BaseModel):  # same name, another field: another JSON Schema
        name: str
        nickname: str | None

    extract(["schema change"], Person, client=client, progress=False)
    extract(["schema change"], Person2, client=client, progress=False)
    assert object_requests(gw) == 2


def test_duplicate_texts_are_requested_and_counted_once(
    gw: LocalGateway, client: SyncKoineClient
) -> None:
    df = extract(["same", "other", "same", "same"], Address, client=client, progress=False)
    assert df["error"].isna().all()
    assert object_requests(gw) == 2
    assert len(df) == 4
    assert df["answer_from"].tolist() == ["request", "request", "duplicate", "duplicate"]
    assert df.loc[[2, 3], "input_tokens"].tolist() == [0, 0]
    stats = df.attrs["koine"]
    # Every token is counted once: the columns add up to what the call spent.
    assert df["input_tokens"].sum() == stats["input_tokens"] > 0
    assert df["output_tokens"].sum() == stats["output_tokens"] > 0
    assert stats["duplicates"] == 2


# -- budget -----------------------------------------------------------------------------------


def test_max_rows_stops_cleanly(gw: LocalGateway, client: SyncKoineClient) -> None:
    df = extract([f"b{i}" for i in range(8)], Address, client=client, max_rows=3, progress=False)
    assert df["error"].isna().sum() == 3
    over = df["error"].dropna()
    assert len(over) == 5 and over.str.startswith("BUDGET_EXCEEDED: ").all()
    assert object_requests(gw) == 3
    assert df.attrs["koine"]["budget_exceeded"]


def test_max_tokens_stops_cleanly(gw: LocalGateway, client: SyncKoineClient) -> None:
    probe = extract(["probe"], Address, client=client, progress=False)
    per_row = int(probe.loc[0, "input_tokens"] + probe.loc[0, "output_tokens"])
    df = extract(
        [f"t{i}" for i in range(10)],
        Address,
        client=client,
        concurrency=1,
        max_tokens=per_row * 3,
        progress=False,
    )
    assert 3 <= df["error"].isna().sum() <= 4
    assert df["error"].dropna().str.startswith("BUDGET_EXCEEDED: max_tokens").all()


# -- several gateways -------------------------------------------------------------------------


def test_rows_spread_over_two_gateways(koine_gateway_factory: Factory) -> None:
    a, b = koine_gateway_factory(max_nonstreaming=2), koine_gateway_factory(max_nonstreaming=3)
    ca = create_koine_sync(base_url=a.base_url, auth_key=a.auth_key)
    cb = create_koine(base_url=b.base_url, auth_key=b.auth_key)
    try:
        df = extract(
            [f"spread {i} [[delay=0.05]]" for i in range(20)],
            Address,
            client=[ca, cb],
            progress=False,
        )
    finally:
        ca.close()
    assert df["error"].isna().all()
    na, nb = object_requests(a), object_requests(b)
    assert na + nb == 20 and na >= 4 and nb >= 4
    assert a.peak["nonStreaming"] <= 2 and b.peak["nonStreaming"] <= 3
    assert a.rejected == b.rejected == 0


def test_dead_replica_is_taken_out_and_its_rows_move(koine_gateway_factory: Factory) -> None:
    a = koine_gateway_factory(max_nonstreaming=2)
    good = create_koine_sync(base_url=a.base_url, auth_key=a.auth_key)
    dead = create_koine_sync(base_url=f"http://127.0.0.1:{dead_port()}", auth_key="k")
    try:
        # 40 rows (2 s on the good gateway): time for the unreachable one's three probes
        # (0.25 s, then 0.5 s apart) before the run ends.
        df = extract(
            [f"dead {i} [[delay=0.1]]" for i in range(40)],
            Address,
            client=[dead, good],
            progress=False,
        )
    finally:
        good.close()
        dead.close()
    assert df["error"].isna().all()
    assert object_requests(a) == 40, df.attrs
    gateways = df.attrs["koine"]["gateways"]
    assert gateways[0]["taken_out"] and not gateways[1]["taken_out"]


def test_replica_stopped_mid_run(koine_gateway_factory: Factory) -> None:
    a, b = koine_gateway_factory(max_nonstreaming=2), koine_gateway_factory(max_nonstreaming=2)
    ca = create_koine_sync(base_url=a.base_url, auth_key=a.auth_key)
    cb = create_koine_sync(base_url=b.base_url, auth_key=b.auth_key)
    texts = [f"mid {i} [[delay=0.1]]" for i in range(16)]
    stopper = threading.Timer(0.25, b.stop)
    stopper.start()
    try:
        df = extract(texts, Address, client=[ca, cb], progress=False)
    finally:
        stopper.join()
        ca.close()
        cb.close()
    assert df["error"].isna().all(), df["error"].dropna().tolist()
    assert object_requests(a) >= 8
    assert df.attrs["koine"]["gateways"][1]["connection_failures"] >= 1


def test_every_gateway_dead_fails_rows_with_network_error() -> None:
    dead = create_koine(base_url=f"http://127.0.0.1:{dead_port()}", auth_key="k")
    started = time.perf_counter()
    df = extract(["x", "y", "z"], Address, client=dead, progress=False)
    assert time.perf_counter() - started < 3
    assert df["error"].str.startswith("NETWORK_ERROR: ").all()


# -- interrupts -------------------------------------------------------------------------------


def _interrupt_texts() -> list[str]:
    return [f"fast {i}" for i in range(4)] + [f"slow {i} [[delay=5]]" for i in range(4)]


def _check_interrupted(df: pd.DataFrame) -> None:
    assert len(df) == 8
    assert df["error"].iloc[:4].isna().all()
    assert df["name"].iloc[:4].notna().all() if "name" in df else True
    assert df["error"].iloc[4:].str.startswith("INTERRUPTED: ").all()
    assert df.attrs["koine"]["interrupted"]


async def test_cancelled_aextract_keeps_completed_rows(gw: LocalGateway) -> None:
    async with create_koine(base_url=gw.base_url, auth_key=gw.auth_key) as c:
        task = asyncio.create_task(aextract(_interrupt_texts(), Address, client=c, progress=False))
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    df = last_result()
    _check_interrupted(df)
    assert gw.wait_for_disconnect(count=LIMIT)  # in-flight requests were really closed
    assert extract.__dict__["last_result"] is df


def test_keyboard_interrupt_in_main_thread_returns_partial_frame(
    gw: LocalGateway, client: SyncKoineClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert threading.current_thread() is threading.main_thread()
    main_id = threading.main_thread().ident
    assert main_id is not None
    timer = threading.Timer(0.5, signal.pthread_kill, (main_id, signal.SIGINT))
    timer.start()
    started = time.perf_counter()
    try:
        df = extract(_interrupt_texts(), Address, client=client, progress="text")
    finally:
        timer.join()
    assert time.perf_counter() - started < 3  # did not wait for the 5 s rows
    _check_interrupted(df)
    assert last_result() is df
    assert "Interrupted" in capsys.readouterr().err
    assert gw.wait_for_disconnect(count=LIMIT)


def test_keyboard_interrupt_can_be_reraised(gw: LocalGateway, client: SyncKoineClient) -> None:
    main_id = threading.main_thread().ident
    assert main_id is not None
    timer = threading.Timer(0.5, signal.pthread_kill, (main_id, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            extract(
                _interrupt_texts(),
                Address,
                client=client,
                progress=False,
                on_interrupt="raise",
            )
    finally:
        timer.join()
    _check_interrupted(last_result())


# -- where it runs ----------------------------------------------------------------------------


async def test_sync_extract_inside_a_running_loop(gw: LocalGateway) -> None:
    # Like a Jupyter cell: a loop is running in this thread, and extract still works.
    asyncio.get_running_loop()
    c = create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key)
    try:
        df = extract(["in a loop 1", "in a loop 2"], Address, client=c, progress=False)
    finally:
        c.close()
    assert df["error"].isna().all()


async def test_aextract_with_async_and_sync_clients(gw: LocalGateway) -> None:
    sync_client = create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key)
    try:
        async with create_koine(base_url=gw.base_url, auth_key=gw.auth_key) as c:
            df = await aextract([f"async {i}" for i in range(4)], Person, client=c, progress=False)
        df2 = await aextract(
            [f"via sync {i}" for i in range(4)], Person, client=sync_client, progress=False
        )
    finally:
        sync_client.close()
    assert df["error"].isna().all() and df2["error"].isna().all()


def test_sync_extract_with_async_client_and_env_default(
    gw: LocalGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    c: KoineClient = create_koine(base_url=gw.base_url, auth_key=gw.auth_key)
    df = extract(["async client"], Address, client=c, progress=False)
    assert df["error"].isna().all()
    monkeypatch.setenv("KOINE_BASE_URL", gw.base_url)
    monkeypatch.setenv("KOINE_AUTH_KEY", gw.auth_key)
    df = extract(["from env"], Address, progress=False)
    assert df["error"].isna().all()


def test_text_progress_shows_counts_and_tokens(
    gw: LocalGateway, client: SyncKoineClient, capsys: pytest.CaptureFixture[str]
) -> None:
    extract(["p1", "p2 [[fail]]"], Address, client=client, progress="text")
    err = capsys.readouterr().err
    assert "1/2 done" in err and "1 failed" in err and "tokens" in err


def test_fills_the_gateway_limit(koine_gateway_factory: Factory) -> None:
    """100 rows, limit 5, 200 ms each: every row succeeds and the limit is used fully but never
    passed. (Requests long enough that a slow or loaded machine still fills the 5 slots: at 50 ms
    it reached 4 under a memory tracer. The time against the ideal is measured in benchmarks/.)"""
    g = koine_gateway_factory(max_nonstreaming=5)
    c = create_koine_sync(base_url=g.base_url, auth_key=g.auth_key)
    try:
        df = extract(
            [f"bench {i} [[delay=0.2]]" for i in range(100)], Address, client=c, progress=False
        )
    finally:
        c.close()
    assert df["error"].isna().all()
    assert len(df) == 100
    assert g.peak["nonStreaming"] == 5 and g.rejected == 0


def test_max_tokens_counts_requests_in_flight(gw: LocalGateway, client: SyncKoineClient) -> None:
    """At concurrency 5 the requests in flight count against the budget (at the run's average):
    the overshoot is at most about one request (it was 2x at max_tokens=60)."""
    probe = extract(["probe"], Address, client=client, progress=False, cache=False)
    per_row = int(probe.loc[0, "input_tokens"] + probe.loc[0, "output_tokens"])
    budget = per_row * 3
    df = extract(
        [f"in flight {i}" for i in range(20)],
        Address,
        client=client,
        concurrency=5,
        max_tokens=budget,
        progress=False,
    )
    spent = int(df["input_tokens"].sum() + df["output_tokens"].sum())
    assert spent <= budget + per_row + 2, (spent, budget, per_row)
    assert df["error"].dropna().str.startswith("BUDGET_EXCEEDED: max_tokens").all()
