"""A ledger written by 3.0.0a1 (``fixtures/ledger-3.0.0a1.sqlite3``) opens with today's code,
is upgraded in place, and keeps serving every answer: 0 requests at the gateway."""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import dask
import dask.dataframe as dd
import pandas as pd

from koine_jupyter.extraction import extract, history
from koine_sdk import create_koine_sync
from koine_sdk.ledger import Ledger
from koine_sdk.ledger._schema import SCHEMA_VERSION
from koine_sdk.testing import LocalGateway

FIXTURES = Path(__file__).parent / "fixtures"


def _maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("maker", FIXTURES / "make_ledger_3_0_0a1.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "old.sqlite3"
    shutil.copy(FIXTURES / "ledger-3.0.0a1.sqlite3", target)
    return target


def test_a_3_0_0a1_ledger_is_upgraded_in_place_and_serves_every_answer(
    koine_gateway: LocalGateway, tmp_path: Path
) -> None:
    m: Any = _maker()
    path = _copy(tmp_path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (0,)
        before = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
    with Ledger(path) as book:
        assert book._query("PRAGMA user_version") == [(SCHEMA_VERSION,)]  # pyright: ignore[reportPrivateUsage]
        assert book._query("SELECT COUNT(*) FROM requests") == [(before,)]  # pyright: ignore[reportPrivateUsage]
        assert len(book.group_runs(_group(book))) == 2  # the Dask group, now a column
    gw = koine_gateway
    client = create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key)
    try:
        words = extract(m.TEXT_ROWS[:2], m.Word, "Say {text}", client=client, ledger=str(path),
                        system=m.SYSTEM)  # fmt: skip
        places = extract(m.OBJECT_ROWS, m.Place, "Where is {text}?", client=client,
                         ledger=str(path))  # fmt: skip
        source: Any = dd.from_pandas(pd.Series(m.DASK_ROWS), npartitions=2)  # pyright: ignore
        with cast(Any, dask).config.set(scheduler="synchronous"):
            lazy: Any = extract(source, m.Word, "Dask {text}", client=client.config,
                                ledger=str(path))  # fmt: skip
            dasked: Any = lazy.compute()
    finally:
        client.close()
    assert list(words["word"]) == ["example", "example"]
    assert list(places["city"]) == ["example", "example"]
    assert list(dasked["word"]) == ["example"] * 4
    for frame in (words, places, dasked):
        assert set(frame["answer_from"]) == {"ledger"}
    replayer = create_koine_sync(
        base_url=gw.base_url, auth_key=gw.auth_key, replay="strict", ledger=str(path)
    )
    try:
        text = replayer.generate_text(prompt=m.SDK_TEXT, system=m.SYSTEM)
        obj = replayer.generate_object(prompt=m.SDK_OBJECT, schema=m.Place)
        with replayer.stream_text(prompt=m.SDK_STREAM) as s:
            streamed = "".join(s.text_stream)
    finally:
        replayer.close()
    assert text.text == "Echo: recorded text call"
    assert obj.object.city == "example"
    assert streamed == "Echo: recorded stream call"
    assert [r.path for r in gw.requests if r.path != "/health"] == []  # nobody paid again
    assert len(history(ledger=str(path))) >= 7  # the old runs and the new ones


def _group(book: Ledger) -> str:
    rows = book._query("SELECT dask_group FROM runs WHERE dask_group IS NOT NULL")  # pyright: ignore[reportPrivateUsage]
    return str(rows[0][0])
