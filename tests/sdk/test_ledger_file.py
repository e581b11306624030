"""The file on disk is the truth: a deleted or replaced ledger is noticed in a running process;
``close()`` closes the connections of every thread; ``KOINE_LEDGER=folder/`` is a folder; odd
text (lone surrogates) is stored without an error."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from koine_sdk.ledger import Ledger, RequestShape, default_location, open_ledger

PATH = "/generate-text"


def _record(ledger: Ledger, prompt: str, answer: str = "a") -> str:
    shape = RequestShape.of(PATH, {"prompt": prompt})
    ledger.record(shape, prompt, status="ok", answer=answer)
    return shape.key(prompt)


def test_a_deleted_ledger_is_forgotten_in_a_running_process(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    ledger = open_ledger(path, fallback=False)
    old = _record(ledger, "remembered")
    assert ledger.get(old) is not None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)  # "forget it: delete the file"
    assert ledger.get(old) is None  # the next use reads the file that is there now: none
    new = _record(ledger, "after")
    ledger.close()
    with Ledger(path) as fresh:  # the new answer went into the new file, which stays
        assert fresh.get(new) is not None and fresh.get(old) is None


def test_a_replaced_ledger_answers_from_the_new_file(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped.sqlite3"
    with Ledger(shipped) as other:
        theirs = _record(other, "from the shipped file")
    path = tmp_path / "l.sqlite3"
    ledger = Ledger(path)
    _record(ledger, "mine")
    ledger.close()
    ledger = Ledger(path)
    assert ledger.get(theirs) is None
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(shipped, tmp_path / "incoming")
    (tmp_path / "incoming").replace(path)  # a new file (new inode) at the same path
    assert ledger.get(theirs) is not None
    ledger.close()


def test_close_closes_the_connections_of_every_thread(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    opened: list[sqlite3.Connection] = []

    def work() -> None:
        _record(ledger, "from a thread")
        opened.append(ledger._local.conn)  # pyright: ignore[reportPrivateUsage]

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    ledger.close()
    with pytest.raises(sqlite3.ProgrammingError):
        opened[0].execute("SELECT 1")  # closed, though another thread opened it


def test_a_trailing_slash_names_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "some" / "new" / "folder"
    monkeypatch.setenv("KOINE_LEDGER", f"{folder}/")
    where = default_location()
    assert where == folder / "ledger.sqlite3"
    Ledger(where).close()
    assert folder.is_dir() and (folder / "ledger.sqlite3").is_file()


def test_lone_surrogates_are_stored_without_an_error(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        key = _record(ledger, "bad \ud800 text", answer="answer \udc80 too")
        rec = ledger.get(key)  # found by the true text's key
        assert rec is not None and rec.answer is not None and "answer" in rec.answer
        ledger.start_run("extract", params={"prompt": "p \ud800"})


def test_creating_a_ledger_never_opens_the_file_another_thread_may_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POSIX locks belong to the process: opening and closing the ledger file while another
    thread holds SQLite's locks on it frees them ("disk I/O error" on a new ledger opened by
    the threads of two Dask workers at once). The file is made under another name and linked."""
    from koine_sdk.ledger import _files

    path = tmp_path / "new" / "l.sqlite3"
    opened: list[str] = []
    real_open = os.open

    def spy(file: str | os.PathLike[str], flags: int, *args: Any, **kwargs: Any) -> int:
        opened.append(str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(_files.os, "open", spy)
    _files.create_private(path)
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert opened and str(path) not in opened
    assert sorted(p.name for p in path.parent.iterdir()) == ["l.sqlite3"]  # no temporary left
    _files.create_private(path)  # an existing ledger is left alone, never opened
    assert str(path) not in opened


def test_the_system_prompt_survives_a_clear_by_another_process(tmp_path: Path) -> None:
    """``history()`` lost the system prompt of later rows once another process had cleared
    the ledger (this one remembered having stored it)."""
    path = tmp_path / "l.sqlite3"
    shape = RequestShape.of(PATH, {"prompt": "x", "system": "Be brief."})
    with Ledger(path) as mine, Ledger(path) as other:  # two objects: two processes' views
        mine.record(shape, "first", status="ok", answer="a")
        other.clear()
        mine.record(shape, "second", status="ok", answer="b")
        rows = mine.rows()
    assert rows["prompt"].tolist() == ["second"]
    assert rows["system"].tolist() == ["Be brief."]
