"""The ledger's files: private modes, code refused, records checked, odd text kept, the file
on disk followed, every connection closed, read-only ledgers read, and no SQL elsewhere."""

from __future__ import annotations

import ast
import os
import pwd
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
import warnings
from pathlib import Path

import pytest

from koine_sdk.ledger import Ledger, LedgerWarning, RequestShape, default_location

ROOT = Path(__file__).parents[2]
SHAPE = RequestShape.of("/generate-text", {"prompt": "x", "system": "Be brief."})


def _record(book: Ledger, prompt: str, answer: str = "an answer") -> str:
    key = SHAPE.key(prompt)
    book.record(SHAPE, prompt, key=key, status="ok", answer=answer, received=answer,
                session_id="s")  # fmt: skip
    return key


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_ledger_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "deep" / "er" / "ledger.sqlite3"
        with Ledger(path) as book:
            _record(book, "hello")
            assert _mode(path.parent) == 0o700
            for suffix in ("", "-wal", "-shm"):
                side = Path(str(path) + suffix)
                assert side.exists() and _mode(side) == 0o600, suffix
    finally:
        os.umask(old)


def test_an_existing_ledger_readable_by_others_warns_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    Ledger(path).close()
    path.chmod(0o644)
    with pytest.warns(LedgerWarning, match="can be read by other users"):
        Ledger(path).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ledger(path).close()  # once


def test_triggers_and_views_are_dropped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "shipped.sqlite3"
    with Ledger(path) as book:
        _record(book, "hello", "honest")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TRIGGER evil AFTER INSERT ON requests BEGIN "
            "UPDATE requests SET answer = '<img src=x onerror=alert(1)>'; END"
        )
        db.execute("CREATE VIEW peek AS SELECT prompt FROM requests")
    with pytest.warns(LedgerWarning, match="code, not data.*evil"):
        book = Ledger(path)
    with book:
        _record(book, "second", "also honest")
        found = book.lookup([SHAPE.key("hello"), SHAPE.key("second")])
        assert {r.answer for r in found.values()} == {"honest", "also honest"}
        code = "SELECT name FROM sqlite_master WHERE type IN ('trigger', 'view')"
        assert book._query(code) == []  # pyright: ignore[reportPrivateUsage]


def test_a_record_of_the_wrong_types_is_a_miss_not_a_type_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.sqlite3"
    with Ledger(path) as book:
        good, bad = _record(book, "good"), _record(book, "bad")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE requests SET input_tokens = 'many', answer = 5 WHERE key = ?", (bad,))
    with Ledger(path) as book:
        found = book.lookup([good, bad])
        assert set(found) == {good}
        assert len(book.rows()) == 2  # history still shows both


def test_lone_surrogates_are_stored_and_read_back_losslessly(tmp_path: Path) -> None:
    prompt = "caf\udce9 \ud800 end"
    with Ledger(tmp_path / "s.sqlite3") as book:
        key = _record(book, prompt, answer="back \udfff")
        record = book.get(key)
        assert record is not None and record.answer == "back \udfff"
        assert book.nearest(prompt, ["/generate-text"]) is not None
        assert book.rows()["prompt"].iloc[0] == prompt


def test_a_deleted_ledger_is_noticed_and_the_new_file_used(tmp_path: Path) -> None:
    path = tmp_path / "gone.sqlite3"
    book = Ledger(path)
    key = _record(book, "hello")
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    assert book.get(key) is None  # the deleted file's answers are forgotten
    _record(book, "after")
    book.close()
    with Ledger(path) as again:  # the new answer is in the file that is there
        assert again.get(SHAPE.key("after")) is not None


def test_a_replaced_ledger_is_noticed(tmp_path: Path) -> None:
    path, other = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    with Ledger(other) as b:
        _record(b, "from b")
    book = Ledger(path)
    _record(book, "from a")
    for suffix in ("-wal", "-shm"):  # (the old file's journal is not the new file's)
        Path(str(path) + suffix).unlink()
    os.replace(other, path)
    assert book.get(SHAPE.key("from b")) is not None
    assert book.get(SHAPE.key("from a")) is None
    book.close()


def test_close_closes_the_connections_of_every_thread(tmp_path: Path) -> None:
    book = Ledger(tmp_path / "t.sqlite3")
    opened: list[sqlite3.Connection] = []

    def use() -> None:
        _record(book, threading.current_thread().name)
        opened.append(book._connect())  # pyright: ignore[reportPrivateUsage]

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    book.close()
    assert len(opened) == 3
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")


def test_a_trailing_slash_names_a_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KOINE_LEDGER", f"{tmp_path}/new/folder/")
    assert default_location() == tmp_path / "new" / "folder" / "ledger.sqlite3"


def test_history_keeps_the_system_prompt_after_a_clear_from_another_process(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.sqlite3"
    book = Ledger(path)
    _record(book, "one")
    code = "import sys; from koine_sdk.ledger import Ledger; Ledger(sys.argv[1]).clear()"
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    _record(book, "two")
    rows = book.rows()
    book.close()
    assert list(rows["system"]) == ["Be brief."]


def test_no_sql_outside_the_ledger_package() -> None:
    """String literals (not docstrings or comments) that read as SQL live in koine_sdk/ledger."""
    sql = re.compile(
        r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|"
        r"CREATE\s+(TABLE|INDEX|VIEW|TRIGGER)|DROP\s+(TABLE|INDEX|VIEW|TRIGGER)|PRAGMA\s+\w+)\b",
        re.DOTALL,
    )
    offenders: list[str] = []
    for package in ("koine_sdk", "koine_jupyter"):
        for file in (ROOT / package).rglob("*.py"):
            if file.is_relative_to(ROOT / "koine_sdk" / "ledger"):
                continue
            tree = ast.parse(file.read_text())
            docstrings = {
                id(node.value)
                for node in ast.walk(tree)
                if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            }
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and id(node) not in docstrings
                    and sql.search(node.value)
                ):
                    offenders.append(f"{file.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


_READER = textwrap.dedent(
    """
    import os, sys, warnings
    import pandas  # (the standard library and packages are root's: imported first)
    from koine_sdk import create_koine_sync
    from koine_sdk.ledger import Ledger, RequestShape
    Ledger(":memory:").rows()
    os.setgid(int(sys.argv[3])); os.setuid(int(sys.argv[2]))
    shape = RequestShape.of("/generate-text", {"prompt": "x", "system": "Be brief."})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        book = Ledger(sys.argv[1])
        assert book.read_only
        record = book.get(shape.key("hello"))
        assert record is not None and record.answer == "an answer", record
        book.record(shape, "new", status="ok", answer="x")  # not kept: one warning
        book.record(shape, "newer", status="ok", answer="y")
        run = book.start_run("extract", params={})
        book.finish_run(run, status="done", stats={})
        assert len(book.rows()) == 1 and len(book.runs()) == 0
        with create_koine_sync(replay="strict", ledger=sys.argv[1]) as client:  # no gateway
            replayed = client.generate_text(prompt="hello", system="Be brief.")
        assert replayed.text == "an answer" and replayed.source == "replay", replayed
    said = [str(w.message) for w in caught if "read-only" in str(w.message)]
    assert len(said) == 1, said
    print("ok")
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="drops privileges from root")
@pytest.mark.parametrize("how", ["file 0444", "folder 0555"])
def test_a_read_only_ledger_is_read_by_a_user_who_cannot_write_it(how: str) -> None:
    nobody = pwd.getpwnam("nobody")
    folder = Path(tempfile.mkdtemp(prefix="koine-ro-"))  # /tmp/...: reachable by nobody
    folder.chmod(0o755)
    path = folder / "answers.sqlite3"
    with Ledger(path) as book:
        _record(book, "hello")
    if how == "file 0444":
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)  # the folder is writable, not the file
        for suffix in ("", "-wal", "-shm"):
            side = Path(str(path) + suffix)
            if side.exists():
                side.chmod(0o444)
    else:
        for side in folder.iterdir():
            side.chmod(0o444)
        folder.chmod(0o555)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(path), str(nobody.pw_uid), str(nobody.pw_gid)],
        capture_output=True, text=True, env=env, timeout=60, cwd="/",
    )  # fmt: skip
    folder.chmod(0o755)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    shutil.rmtree(folder, ignore_errors=True)


def test_each_answer_keeps_the_model_that_answered(tmp_path: Path) -> None:
    shape = RequestShape.of("/generate-text", {"prompt": "x", "model": "haiku"})
    with Ledger(tmp_path / "m.sqlite3") as book:
        book.record(shape, "asked", status="ok", answer="a")
        book.record(shape, "asked again", status="ok", answer="b", answered_by="sonnet")
        rows = book.rows()
        assert list(rows["answered_by"]) == ["haiku", "sonnet"]
        record = book.get(shape.key("asked again"))
        assert record is not None and record.answered_by == "sonnet"
