"""Run by tests/cli/test_suite_isolation.py in an inner pytest: one test that records an answer
in the default ledger, or not (PROBE_WRITE_DEFAULT)."""

from __future__ import annotations

import os

import pytest

from koine_sdk.ledger import open_ledger


def test_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.environ.get("PROBE_WRITE_DEFAULT"):
        monkeypatch.delenv("KOINE_LEDGER")  # forgets the isolation: the default ledger
    ledger = open_ledger(fallback=False)
    run = ledger.start_run("probe", rows=0, params={})
    ledger.finish_run(run, status="done", stats={})
