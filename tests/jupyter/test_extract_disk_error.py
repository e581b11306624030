"""A run whose ledger writes fail mid-run (the disk refuses them) loses no paid answer from its
frame, and ``history()`` shows the run ``failed`` with the error instead of ``running``.

The disk error is real: the run goes in a subprocess whose file-size limit (``RLIMIT_FSIZE``)
is lowered to the ledger's size after a few rows were written, so SQLite's next write fails
("disk I/O error", as on a full disk), and raised again a few rows later (space freed)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from koine_jupyter.extraction import generate, history
from koine_sdk import KoineError, create_koine_sync
from koine_sdk.testing import LocalGateway

resource = pytest.importorskip("resource")

_RUN = r"""
import json, os, resource, signal, sys, threading, warnings
from koine_jupyter.extraction import generate
from koine_sdk import create_koine_sync
from koine_sdk.testing import LocalGateway

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), no kill
path = sys.argv[1]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)


def disk_full_for_a_while(gw):
    assert gw.wait_for_requests(6, timeout=30)
    size = max(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    assert gw.wait_for_requests(12, timeout=30)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


with LocalGateway(max_nonstreaming=2) as gw:
    breaker = threading.Thread(target=disk_full_for_a_while, args=(gw,))
    breaker.start()
    with create_koine_sync(base_url=gw.base_url, auth_key=gw.auth_key) as koine:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = generate(
                [f"row {i} [[delay=0.05]]" for i in range(20)],
                "Say {text}",
                client=koine,
                ledger=path,
                progress=False,
            )
    breaker.join()
    paid = sum(1 for r in gw.requests if r.path == "/generate-text")
print(json.dumps({
    "texts": df["text"].notna().sum().item(),
    "errors": df["error"].notna().sum().item(),
    "from": sorted(set(df["answer_from"].astype(str))),
    "paid": paid,
    "error": df.attrs["koine"].get("error") or "",
    "warnings": [str(w.message) for w in caught],
}))
"""


def test_a_run_whose_ledger_fails_mid_run_is_marked_failed(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    done = subprocess.run(
        [sys.executable, "-c", _RUN, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # no paid answer is lost from the frame
    assert out["texts"] == 20 and out["errors"] == 0 and out["from"] == ["request"]
    assert out["paid"] == 20
    assert any("kept in this process" in w for w in out["warnings"])
    runs = history(ledger=str(path))
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["status"] == "failed"  # not left "running"
    assert out["error"].startswith("LEDGER_ERROR: ")
    assert run["error"] == out["error"] and "disk" in run["error"]
    assert run["rows"] == 20 and run["succeeded"] == 20
    # the rows written before the disk failed are in the ledger; the others were kept in the
    # subprocess's memory only
    assert 0 < len(history("last", ledger=str(path))) < 20


def test_a_run_that_stops_on_a_fatal_error_says_why_in_history(
    koine_gateway_factory: Callable[..., LocalGateway], tmp_path: Path
) -> None:
    gw = koine_gateway_factory()
    ledger = str(tmp_path / "fatal.sqlite3")
    with create_koine_sync(base_url=gw.base_url, auth_key="wrong-key") as koine:
        with pytest.raises(KoineError):
            generate(["one", "two"], "Say {text}", client=koine, ledger=ledger, progress=False)
    run = history(ledger=ledger).iloc[0]
    assert run["status"] == "failed" and str(run["error"]).startswith("AUTH_INVALID: ")
