"""Claims: a key being asked. Of two processes contending for one key exactly one gets it; a
claim whose owner died expires and is taken over; waiting never lasts forever."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from koine_sdk.ledger import Ledger, RequestShape

SHAPE = RequestShape.of("/generate-text", {"prompt": "x"})


def _contend(path: str, owner: str, start: float, keys: list[str], out: mp.Queue) -> None:  # type: ignore[type-arg]
    book = Ledger(path)
    while time.time() < start:
        time.sleep(0.001)
    result = book.claim(keys, owner, ttl=30)
    out.put((owner, sorted(result.granted)))
    book.close()


def test_of_processes_contending_for_keys_exactly_one_gets_each(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite3")
    Ledger(path).close()
    keys = [f"k{i}" for i in range(20)]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start = time.time() + 2.0
    procs = [ctx.Process(target=_contend, args=(path, f"p{n}", start, keys, out)) for n in range(4)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    granted = [key for _, keys_of in got for key in keys_of]
    assert sorted(granted) == sorted(keys)  # every key once, whoever won it


def test_a_live_claim_is_held_and_an_expired_one_taken_over(tmp_path: Path) -> None:
    with Ledger(tmp_path / "c.sqlite3") as book:
        first = book.claim(["a", "b"], "one", ttl=0.3)
        assert first.granted == {"a", "b"} and first.all_granted
        second = book.claim(["a", "c"], "two", ttl=5)
        assert second.granted == {"c"} and dict(second.held) == {"a": "one"}
        assert book.renew(["a"], "one", ttl=0.3) == 1
        time.sleep(0.4)  # "one" died without releasing
        third = book.claim(["a", "b"], "two", ttl=5)
        assert third.granted == {"a", "b"}
        book.release(["a", "b", "c"], "two")
        assert book.claim(["a"], "three").granted == {"a"}


def test_wait_for_returns_the_answer_when_the_owner_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "w.sqlite3"
    key = SHAPE.key("asked")
    with Ledger(path) as owner, Ledger(path) as waiter:
        assert owner.claim([key], "owner", ttl=10).all_granted
        assert not waiter.claim([key], "waiter", ttl=10).all_granted

        def answer() -> None:
            time.sleep(0.3)
            owner.record(SHAPE, "asked", key=key, status="ok", answer="yes")
            owner.release([key], "owner")

        import threading

        t = threading.Thread(target=answer)
        t.start()
        began = time.monotonic()
        found = waiter.wait_for([key], timeout=10)
        t.join()
        assert found[key].answer == "yes" and time.monotonic() - began < 5


def test_wait_for_gives_up_at_the_timeout_and_at_an_expired_claim(tmp_path: Path) -> None:
    with Ledger(tmp_path / "t.sqlite3") as book:
        book.claim(["slow"], "owner", ttl=30)
        began = time.monotonic()
        assert book.wait_for(["slow"], timeout=0.3) == {}
        assert 0.25 < time.monotonic() - began < 3
        book.claim(["dead"], "ghost", ttl=0.2)
        began = time.monotonic()
        assert book.wait_for(["dead"], timeout=30) == {}  # the claim expired: ask it yourself
        assert time.monotonic() - began < 3


def test_an_answer_keeps_the_model_that_answered_it(tmp_path: Path) -> None:
    named = RequestShape.of("/generate-text", {"prompt": "x", "model": "haiku"})
    with Ledger(tmp_path / "m.sqlite3") as book:
        book.record(SHAPE, "by default", status="ok", answer="a", answered_by="sonnet")
        book.record(named, "named", status="ok", answer="b", answered_by="sonnet")
        book.record(SHAPE, "unknown", status="ok", answer="c")
        assert list(book.rows()["model"].astype(object).fillna("-")) == ["sonnet", "haiku", "-"]


def test_held_names_the_live_claims_and_their_owners(tmp_path: Path) -> None:
    with Ledger(tmp_path / "h.sqlite3") as book:
        book.claim(["a", "b"], "run-1", ttl=30)
        book.claim(["c"], "run-2", ttl=0.05)
        assert book.held(["a", "b", "c", "d"]) in (
            {"a": "run-1", "b": "run-1", "c": "run-2"},
            {"a": "run-1", "b": "run-1"},  # run-2's claim may already have expired
        )
        time.sleep(0.1)
        assert book.held(["a", "c", "d"]) == {"a": "run-1"}  # expired and absent keys: none
        book.release(["a"], "run-1")
        assert book.held(["a", "b"]) == {"b": "run-1"}
        assert book.held([]) == {}
