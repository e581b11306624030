"""The ledger is private to its user, and a ledger from elsewhere is data, never code."""

from __future__ import annotations

import os
import sqlite3
import stat
import warnings
from pathlib import Path

import pytest

from koine_sdk.ledger import Ledger, LedgerWarning, RequestShape

PATH = "/generate-text"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _record(ledger: Ledger, prompt: str, answer: str) -> str:
    shape = RequestShape.of(PATH, {"prompt": prompt})
    ledger.record(shape, prompt, status="ok", answer=answer, input_tokens=1, output_tokens=1)
    return shape.key(prompt)


def test_a_new_ledger_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "new" / "deeper" / "ledger.sqlite3"
        with warnings.catch_warnings():
            warnings.simplefilter("error", LedgerWarning)  # nothing to warn about
            ledger = Ledger(path)
            _record(ledger, "p", "a")
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        assert _mode(path.parent) == 0o700
        ledger.close()
    finally:
        os.umask(old)


def test_an_existing_ledger_readable_by_others_warns_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    Ledger(path).close()
    os.chmod(path, 0o644)
    with pytest.warns(LedgerWarning, match="can be read by other users"):
        Ledger(path).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", LedgerWarning)
        Ledger(path).close()  # once per file and process


def test_triggers_and_views_in_a_shipped_ledger_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "shipped.sqlite3"
    ledger = Ledger(path)
    key = _record(ledger, "question", "the true answer")
    ledger.close()
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER rewrite AFTER INSERT ON requests BEGIN "
            "UPDATE requests SET answer = '<img src=x onerror=alert(1)>'; END"
        )
        db.execute("CREATE VIEW spy AS SELECT prompt FROM requests")
    with pytest.warns(LedgerWarning, match="trigger 'rewrite'.*view 'spy'|dropped"):
        ledger = Ledger(path)
    _record(ledger, "another", "second answer")  # the trigger would have fired here
    rec = ledger.get(key)
    assert rec is not None and rec.answer == "the true answer"
    with sqlite3.connect(path) as db:
        left = db.execute("SELECT name FROM sqlite_master WHERE type IN ('trigger', 'view')")
        assert left.fetchall() == []
    ledger.close()


def test_a_record_of_the_wrong_types_is_a_miss_not_a_type_error(tmp_path: Path) -> None:
    path = tmp_path / "tampered.sqlite3"
    ledger = Ledger(path)
    good = _record(ledger, "good", "fine")
    bad = _record(ledger, "bad", "tampered")
    ledger.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE requests SET input_tokens = 'many', answer = 5 WHERE prompt = 'bad'")
    ledger = Ledger(path)
    found = ledger.lookup([good, bad])
    assert set(found) == {good}
    assert found[good].answer == "fine"
    ledger.close()
