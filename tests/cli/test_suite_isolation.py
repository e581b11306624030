"""The suite runs in its own cache folder: another program using the user's ledger meanwhile
does not fail it, and a test that writes the default ledger does."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from koine_sdk.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]


def _inner_pytest(
    user_cache: Path, probe: str = "isolation_probe.py", **extra: str
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, XDG_CACHE_HOME=str(user_cache), **extra)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--basetemp", str(user_cache.parent / "inner"), f"tests/cli/{probe}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_another_program_writing_the_users_ledger_does_not_fail_the_suite(
    tmp_path: Path,
) -> None:
    user_cache = tmp_path / "user-cache"  # stands for the user's ~/.cache
    users_ledger = user_cache / "koine" / "ledger.sqlite3"
    stop = threading.Event()

    def other_program() -> None:
        with Ledger(users_ledger) as ledger:
            while not stop.is_set():
                run = ledger.start_run("other", rows=0, params={})
                ledger.finish_run(run, status="done", stats={})
                stop.wait(0.05)

    writer = threading.Thread(target=other_program)
    writer.start()
    try:
        done = _inner_pytest(user_cache)
    finally:
        stop.set()
        writer.join()
    assert done.returncode == 0, done.stdout + done.stderr
    with Ledger(users_ledger) as ledger:
        assert all(kind == "other" for kind in ledger.runs()["kind"])  # the probe wrote elsewhere


def test_a_test_writing_the_default_ledger_fails_the_suite(tmp_path: Path) -> None:
    user_cache = tmp_path / "user-cache"
    done = _inner_pytest(user_cache, PROBE_WRITE_DEFAULT="1")
    assert done.returncode == 1
    assert "used the default ledger" in done.stdout
    assert not (user_cache / "koine").exists()  # and still not the user's own


def test_a_test_leaving_a_koine_variable_changed_fails(tmp_path: Path) -> None:
    done = _inner_pytest(tmp_path / "user-cache", "env_leak_probe.py")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    # the two leaks pass, then fail in teardown; the third is clean
    assert "3 passed, 2 errors" in out, out
    assert "ERROR at teardown of test_leaks_a_mode" in out
    assert "KOINE_REPLAY: unset -> 'record'" in out
    assert "ERROR at teardown of test_leaks_through_a_fixture" in out
    assert "KOINE_AUTH_KEY: unset -> set (value not shown)" in out
    assert "probe-secret-value" not in out + done.stderr  # a key's value is never reported
