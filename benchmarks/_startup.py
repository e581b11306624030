"""Start-up: how long ``import koine_sdk`` takes in a fresh interpreter, next to
``import httpx, pydantic`` (what a client needs at all) and an empty interpreter, and
``koine --help``, interleaved."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

__all__ = ["startup_times"]

CASES = {
    "python (nothing)": "pass",
    "import httpx, pydantic": "import httpx, pydantic",
    "import koine_sdk": "import koine_sdk",
    "koine_sdk + create_koine_sync": "from koine_sdk import create_koine_sync",
    # the `koine` command's script, as its entry point runs it (help text to /dev/null)
    "koine --help": "import sys; from koine_sdk.cli import main; sys.exit(main(['--help']))",
}


def startup_times(rounds: int) -> dict[str, float]:
    """Median wall seconds of each case over ``rounds`` interleaved runs."""
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for r in range(rounds):
        order = list(CASES) if r % 2 == 0 else list(CASES)[::-1]
        for name in order:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-c", CASES[name]], check=True, stdout=subprocess.DEVNULL
            )
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
