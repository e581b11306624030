"""The sync client's life cycle: fork, pickling, the garbage collector, close() while other
threads work, and calls on a closed client. Numbers are printed (``-s`` shows them)."""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import pickle
import threading
import time
import warnings
from typing import Any

import _lifecycle_workers as workers
import pytest

from koine_sdk import KoineError, LoopThread, SyncKoineClient, create_koine, create_koine_sync


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "koine-sdk-loop" and t.is_alive()]


def _fds() -> int:
    """Open sockets and pipes of this process (not regular files: a background thread of
    another library, e.g. a Dask cluster's system monitor reading /proc, would add noise)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own fd, among others)
        count += target.startswith(("socket:", "pipe:", "anon_inode:"))
    return count


def _client(gw: Any, **kwargs: Any) -> SyncKoineClient:
    return create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key, **kwargs)


# -- closed ----------------------------------------------------------------------------------


def test_calls_on_a_closed_client_raise_without_starting_a_thread(koine_gateway: Any) -> None:
    before = len(_loop_threads())
    koine = _client(koine_gateway)
    koine.close()
    calls = [
        lambda: koine.generate_text(prompt="x"),
        lambda: koine.generate_object(prompt="x", schema=dict),
        lambda: koine.stream_text(prompt="x"),
        lambda: koine.stream_object(prompt="x", schema=dict),
        lambda: koine.health(),
        lambda: koine.loop(),
        lambda: koine.run(lambda k: k.health()),
        lambda: asyncio.run(koine.arun(lambda k: k.health())),
    ]
    for call in calls:
        with pytest.raises(KoineError) as info:
            call()
        assert info.value.code == "CLIENT_CLOSED"
    assert len(_loop_threads()) == before
    assert koine_gateway.requests == []
    koine.close()  # idempotent


def test_close_while_other_threads_work(koine_gateway: Any) -> None:
    koine = _client(koine_gateway)
    streaming = threading.Event()
    outcomes: dict[str, str] = {}

    def record(name: str, fn: Any) -> None:
        try:
            fn()
            outcomes[name] = "ok"
        except KoineError as exc:
            outcomes[name] = exc.code
        except BaseException as exc:  # anything else is a failure of the test
            outcomes[name] = repr(exc)

    def iterate() -> None:
        with koine.stream_text(prompt=" ".join(["w"] * 200) + " [[slow=0.05]]") as r:
            for _ in r.text_stream:
                streaming.set()

    def read_all() -> None:
        with koine.stream_text(prompt=" ".join(["v"] * 200) + " [[slow=0.05]]") as r:
            r.text()

    work = {
        "iterating a stream": iterate,
        "waiting in text()": read_all,
        "generate_text": lambda: koine.generate_text(prompt="slow [[delay=5]]"),
    }
    threads = [threading.Thread(target=record, args=item) for item in work.items()]
    for thread in threads:
        thread.start()
    assert streaming.wait(5)
    assert koine_gateway.wait_for_requests(3, 5)
    began = time.monotonic()
    koine.close()
    for thread in threads:
        thread.join(5)
    elapsed = time.monotonic() - began
    print(f"\nclose() with 3 calls in flight: {elapsed:.2f} s, outcomes {outcomes}")
    assert outcomes == dict.fromkeys(work, "CLIENT_CLOSED")
    assert elapsed < 3.0
    assert not _loop_threads() or all(t not in _loop_threads() for t in threads)
    assert koine_gateway.wait_idle(3.0)  # every connection was closed


async def test_async_client_closed_while_a_task_streams(koine_gateway: Any) -> None:
    koine = create_koine(base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key)
    first = asyncio.Event()

    async def consume() -> None:
        async with koine.stream_text(prompt=" ".join(["w"] * 100) + " [[slow=0.05]]") as r:
            async for _ in r.text_stream:
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    await koine.aclose()
    with pytest.raises(KoineError) as info:
        await asyncio.wait_for(task, 5)
    assert info.value.code == "CLIENT_CLOSED"


# -- the garbage collector -------------------------------------------------------------------


def test_dropped_clients_leave_no_thread_socket_or_warning(koine_gateway: Any) -> None:
    gc.collect()
    threads_before, fds_before = len(_loop_threads()), _fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(50):
            koine = _client(koine_gateway)
            assert koine.generate_text(prompt=f"n{i}").text == f"Echo: n{i}"
            del koine
        gc.collect()
        assert koine_gateway.wait_idle(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (
            len(_loop_threads()) > threads_before or _fds() > fds_before
        ):
            time.sleep(0.05)
            gc.collect()
    threads_after, fds_after = len(_loop_threads()), _fds()
    print(
        f"\n50 dropped sync clients: loop threads {threads_before} -> {threads_after}, "
        f"fds {fds_before} -> {fds_after}, warnings {len(caught)}"
    )
    assert threads_after == threads_before
    assert fds_after <= fds_before
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], caught


def test_a_dropped_client_with_an_open_stream_keeps_working(koine_gateway: Any) -> None:
    with _client(koine_gateway).stream_text(prompt="one two three [[slow=0.05]]") as r:
        gc.collect()  # the client is only referenced by its stream
        assert r.text() == "Echo: one two three"


# -- fork and spawn --------------------------------------------------------------------------


def test_a_client_made_before_fork_works_in_the_child(koine_gateway: Any) -> None:
    koine = _client(koine_gateway)
    workers.CLIENT = koine
    try:
        assert koine.generate_text(prompt="parent first").text == "Echo: parent first"
        assert workers.LOOP.run(workers._answer()) == "from the module loop"  # pyright: ignore[reportPrivateUsage]
        context = multiprocessing.get_context("fork")
        queue: Any = context.Queue()
        began = time.monotonic()
        child = context.Process(target=workers.use_inherited, args=(queue,))
        child.start()
        status, out = queue.get(timeout=30)
        child.join(30)
        print(f"\nforked child: {time.monotonic() - began:.2f} s, {status}")
        assert (status, child.exitcode) == ("ok", 0), out
        assert out == ["Echo: from the child", "Echo: child stream", "from the module loop"]
        # the parent's client and loop are untouched
        assert koine.generate_text(prompt="parent again").text == "Echo: parent again"
        assert workers.LOOP.run(workers._answer()) == "from the module loop"  # pyright: ignore[reportPrivateUsage]
    finally:
        workers.CLIENT = None
        koine.close()


def test_a_pickled_client_works_in_a_spawned_process(koine_gateway: Any) -> None:
    koine = _client(koine_gateway, model="haiku", max_retries=2)
    copy = pickle.loads(pickle.dumps(koine))
    assert isinstance(copy, SyncKoineClient) and copy is not koine
    assert (copy.config, copy.run(lambda k: _retries(k))) == (koine.config, 2)
    copy.close()
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        out = pool.apply(workers.use_pickled, (koine,))
    assert out == ["Echo: spawned", "from the module loop"]
    assert koine_gateway.requests[-1].json == {"prompt": "spawned", "model": "haiku"}
    koine.close()


async def _retries(client: Any) -> int:
    return client.max_retries


def test_loop_thread_after_fork_in_a_child_without_register_at_fork() -> None:
    """The pid check alone (for a fork that skips the at-fork hooks) also gives a fresh loop."""
    runner = LoopThread(name="koine-test-loop")
    parent_loop = runner.loop()
    runner._pid = -1  # pyright: ignore[reportPrivateUsage]  # as seen from a forked child
    child_loop = runner.loop()
    assert child_loop is not parent_loop and not parent_loop.is_closed()
    assert runner.run(workers._answer()) == "from the module loop"  # pyright: ignore[reportPrivateUsage]
    runner.close()
