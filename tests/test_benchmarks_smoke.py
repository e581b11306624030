"""The benchmarks still run: ``benchmarks/run.py --smoke`` (tiny sizes, correctness checks only,
no targets, no koine-sdk 2.3.0 install) exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_benchmarks_smoke() -> None:
    out = subprocess.run(
        [sys.executable, str(RUN), "--smoke"],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "!! " not in out.stdout  # a benchmark that raised
