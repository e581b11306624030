"""A ledger that breaks in the middle of a run never cancels a row nor loses a paid answer:
the run warns, keeps the rest in this process's memory, and a re-run in this process reuses
those answers."""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

from koine_jupyter.extraction import clear_cache, generate
from koine_sdk import create_koine_sync
from koine_sdk.ledger import LedgerWarning
from koine_sdk.testing import LocalGateway


def test_a_ledger_that_breaks_mid_run_loses_nothing(
    koine_gateway: LocalGateway, tmp_path: Path
) -> None:
    clear_cache()
    koine_gateway.configure(max_nonstreaming=2)  # 20 rows of 0.1 s: the run takes >= 1 s
    path = tmp_path / "ledger.sqlite3"
    texts = [f"row {i} [[delay=0.1]]" for i in range(20)]
    started = threading.Event()

    def break_the_ledger() -> None:
        started.wait(10)
        time.sleep(0.4)  # a few rows are written, many are still to come
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        os.makedirs(path)  # the file is now a folder: every write fails

    breaker = threading.Thread(target=break_the_ledger)
    breaker.start()
    with create_koine_sync(
        base_url=koine_gateway.base_url, auth_key=koine_gateway.auth_key
    ) as koine:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started.set()
            df = generate(texts, "Say {text}", client=koine, ledger=str(path), progress=False)
        breaker.join()
        assert df["error"].isna().all()  # no row cancelled
        assert df["answer_from"].tolist() == ["request"] * 20
        kept = [w for w in caught if issubclass(w.category, LedgerWarning)]
        assert any("kept in this process" in str(w.message) for w in kept)
        paid = sum(1 for r in koine_gateway.requests if r.path == "/generate-text")
        assert paid == 20
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LedgerWarning)
            again = generate(texts, "Say {text}", client=koine, ledger=str(path), progress=False)
    assert again["text"].tolist() == df["text"].tolist()
    rerun_paid = sum(1 for r in koine_gateway.requests if r.path == "/generate-text") - paid
    # The answers written after the break were kept in memory and are not paid again; those
    # written before it went with the deleted file.
    reused = int((again["answer_from"] == "ledger").sum())
    assert reused > 0 and reused + rerun_paid == 20
    clear_cache()
