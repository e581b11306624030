"""koine_sdk.ledger: the key, the file, several writers, bad files, the readers."""

from __future__ import annotations

import multiprocessing
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from koine_sdk import KoineError
from koine_sdk.ledger import (
    Ledger,
    LedgerWarning,
    RequestShape,
    default_location,
    open_ledger,
    process_ledger,
    request_key,
    request_keys,
)

PATH = "/generate-object"
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def test_the_key_covers_what_decides_the_answer() -> None:
    base = {"prompt": "p", "schema": SCHEMA}
    key = request_key(PATH, base)
    assert len(key) == 64 and key == request_key(PATH, dict(base))
    assert key == request_key(PATH, {**base, "system": None, "model": None})  # None = absent
    changed = [
        {**base, "prompt": "q"},
        {**base, "system": "s"},
        {**base, "model": "haiku"},
        {**base, "allowedTools": ["Read"]},
        {**base, "sessionId": "abc"},
        {**base, "schema": {**SCHEMA, "required": []}},
    ]
    keys = {request_key(PATH, b) for b in changed} | {request_key("/generate-text", base)}
    assert key not in keys and len(keys) == len(changed) + 1
    with pytest.raises(ValueError, match="prompt"):
        request_key(PATH, {"schema": SCHEMA})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(prompt=st.text(), schema=st.dictionaries(st.text(max_size=6), json_values, max_size=5))
def test_the_key_ignores_key_order_and_matches_the_batch_form(
    prompt: str, schema: dict[str, Any]
) -> None:
    reordered = dict(reversed(list(schema.items())))
    body = {"prompt": prompt, "schema": schema, "model": "m"}
    assert request_key(PATH, body) == request_key(PATH, {**body, "schema": reordered})
    assert request_keys(PATH, {"schema": schema, "model": "m"})(prompt) == request_key(PATH, body)
    assert RequestShape.of(PATH, body).key(prompt) == request_key(PATH, body)


def test_records_and_lookup_prefer_the_latest_success(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    shape = RequestShape.of(PATH, {"schema": SCHEMA, "system": "sys"})
    run = ledger.start_run("test", rows=2, params={"prompt": "{text}"})
    ledger.record(shape, "a", status="failed", error_code="CLI_EXIT_ERROR", error_message="x")
    ledger.record(shape, "a", status="ok", answer='{"a":1}', input_tokens=5, run_id=run)
    ledger.record(shape, "a", status="failed", error_code="PARSE_ERROR", error_message="y")
    ledger.record(shape, "b", status="failed", error_code="CLI_EXIT_ERROR", error_message="z")
    found = ledger.lookup([shape.key("a"), shape.key("b"), shape.key("c")])
    assert found[shape.key("a")].ok and found[shape.key("a")].answer == '{"a":1}'
    assert found[shape.key("b")].error_code == "CLI_EXIT_ERROR"
    assert shape.key("c") not in found
    ledger.finish_run(run, status="done", stats={"requests": 1, "input_tokens": 5})
    # The schema and the system prompt are stored once, however many rows use them.
    assert ledger._query("SELECT COUNT(*) FROM blobs") == [(2,)]
    rows = ledger.rows()
    assert rows["prompt"].tolist() == ["a", "a", "a", "b"]
    assert rows["system"].tolist() == ["sys"] * 4
    assert rows["error"].tolist()[0] == "CLI_EXIT_ERROR: x"
    assert str(rows["input_tokens"].dtype) == "Int64"
    runs = ledger.runs()
    assert runs.loc[run, "status"] == "done" and runs.loc[run, "input_tokens"] == 5
    ledger.clear()
    assert ledger.rows().empty and ledger.runs().empty
    ledger.close()


def _writer(path: str, worker: int, count: int) -> None:
    ledger = Ledger(path)
    shape = RequestShape.of(PATH, {"schema": SCHEMA})
    for i in range(count):
        ledger.record(shape, f"w{worker}-{i}", status="ok", answer="{}", input_tokens=1)
    ledger.close()


def test_several_processes_and_threads_write_one_ledger_and_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    Ledger(path).close()
    ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in range(4)]
    threads = [threading.Thread(target=_writer, args=(path, 10 + w, 150)) for w in range(3)]
    for p in procs:
        p.start()
    for t in threads:
        t.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    for t in threads:
        t.join(60)
    ledger = Ledger(path)
    assert ledger._query("SELECT COUNT(*), COUNT(DISTINCT prompt) FROM requests") == [(1050, 1050)]
    ledger.close()


def test_threads_opening_a_new_ledger_at_the_same_moment_all_succeed(tmp_path: Path) -> None:
    # Switching a new file to WAL and creating its tables can be refused with "database is
    # locked" without SQLite's busy handler being consulted; opening must wait, not fail.
    failures: list[BaseException] = []
    for round_ in range(20):
        path = tmp_path / f"race-{round_}.sqlite3"
        barrier = threading.Barrier(8)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                Ledger(path).close()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_bad_files_raise_ledger_error_or_fall_back_with_a_warning(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"\x00not sqlite\xff" * 64)
    with pytest.raises(KoineError) as info:
        Ledger(garbage)
    assert info.value.code == "LEDGER_ERROR" and "cannot be used" in info.value.message
    with pytest.warns(LedgerWarning):
        assert open_ledger(garbage) is process_ledger()
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    with pytest.raises(KoineError, match="cannot create the ledger's folder"):
        Ledger(blocked / "sub" / "l.sqlite3")
    newer = tmp_path / "newer.sqlite3"
    Ledger(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(KoineError, match="newer koine-sdk"):
        Ledger(newer)


def test_a_lock_held_too_long_is_a_ledger_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    ledger = Ledger(path, timeout=0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(KoineError) as info:
            ledger.record_request(PATH, {"prompt": "p"}, status="ok", answer="{}")
        assert info.value.code == "LEDGER_ERROR" and "locked" in info.value.message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    ledger.record_request(PATH, {"prompt": "p"}, status="ok", answer="{}")
    assert len(ledger.rows()) == 1


def test_where_the_ledger_lives(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KOINE_LEDGER")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if sys.platform.startswith("linux"):
        assert default_location() == tmp_path / "cache" / "koine" / "ledger.sqlite3"
    for off in ("0", "off", "False", "no", "none"):
        monkeypatch.setenv("KOINE_LEDGER", off)
        assert default_location() is None
        assert open_ledger() is process_ledger()
    monkeypatch.setenv("KOINE_LEDGER", str(tmp_path))  # a folder: the file goes inside
    assert default_location() == tmp_path / "ledger.sqlite3"
    monkeypatch.setenv("KOINE_LEDGER", ":memory:")
    assert open_ledger() is process_ledger()
    assert open_ledger(False) is process_ledger()
    with pytest.raises(KoineError, match="ledger must be"):
        open_ledger(3)  # type: ignore[arg-type]
