"""A ledger this process can read but not write is useful: its answers are reused by
``extract`` and replayed by a strict client, with one warning that new answers are not kept.

Tests run as root here, for whom file modes do not apply: the reader runs in a subprocess that
drops to the ``nobody`` user first, on a copy of the ledger it may read but not write."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway

NOBODY = 65534

pytestmark = pytest.mark.skipif(
    not hasattr(os, "setuid") or os.geteuid() != 0, reason="needs root to drop to nobody"
)

_READER = r"""
import json, os, sys, warnings
# Everything is imported first: the interpreter's own files may not be readable by nobody.
import pandas, sqlite3, email.utils, platformdirs
from koine_sdk import create_koine_sync
from koine_sdk.ledger import Ledger, RequestShape
import koine_sdk._replay, koine_sdk.ledger._frames
os.setgid(65534)
os.setuid(65534)
path, prompt = sys.argv[1], sys.argv[2]
out = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with create_koine_sync(replay="strict", ledger=path) as koine:
        out["replayed"] = koine.generate_text(prompt=prompt).text
    book = Ledger(path)
    shape = RequestShape.of("/generate-text", {"prompt": "new"})
    book.record(shape, "new", status="ok", answer="not kept")  # no error, not kept
    out["kept"] = book.get(shape.key("new")) is not None
    out["history"] = len(book.rows())
    book.close()
out["warnings"] = [str(w.message) for w in caught]
print(json.dumps(out))
"""


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="koine-ro-", dir="/tmp"))
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_read_only_ledger_answers_and_keeps_nothing_new(shared_folder: Path) -> None:
    source = shared_folder / "make.sqlite3"
    with LocalGateway() as gw:
        with create_koine_sync(
            base_url=gw.base_url, auth_key=gw.auth_key, replay="record", ledger=source
        ) as koine:
            answer = koine.generate_text(prompt="shared question").text
    import sqlite3

    with sqlite3.connect(source) as db:  # fold the WAL in, as one does before shipping a file
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ro = shared_folder / "ro"
    ro.mkdir()
    shutil.copyfile(source, ro / "answers.sqlite3")  # a shipped file: no -wal, no -shm
    os.chmod(ro / "answers.sqlite3", 0o444)
    os.chmod(ro, 0o555)  # nobody can create -wal/-shm here either
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KOINE_")}
        env["HOME"] = "/tmp"
        proc = subprocess.run(
            [sys.executable, "-c", _READER, str(ro / "answers.sqlite3"), "shared question"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd="/",
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        os.chmod(ro, 0o755)
    assert out["replayed"] == answer
    assert out["kept"] is False and out["history"] == 1
    notes = [w for w in out["warnings"] if "read-only" in w]
    assert len(notes) == 1, out["warnings"]
