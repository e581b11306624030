"""Repository-wide pytest setup.

The notebooks under notebooks/ are re-executed by nbval in kernels that inherit this
process's environment. Their saved outputs were made on the offline local gateway in a
plain kernel, so a run must not pick up a real gateway (KOINE_BASE_URL/KOINE_AUTH_KEY: the
outputs would differ and it would spend tokens), a forced display mode (KOINE_DISPLAY), a
record/replay mode (KOINE_REPLAY) or an editor's markers that make views choose widgets
(VSCODE_PID, JPY_SESSION_NAME).

The ledger (koine_sdk.ledger) must never be the user's own: KOINE_LEDGER points at a fresh file
in a temporary folder for the whole run (kernels inherit it; tests/conftest.py gives each test
its own file on top), so recorded answers neither leak into the user's cache nor make a second
run of the notebooks differ from the first; XDG_CACHE_HOME points at the suite's own cache
folder, which is what the end-of-run check looks at.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
from _pytest.terminal import TerminalReporter

for _name in (
    "KOINE_BASE_URL",
    "KOINE_AUTH_KEY",
    "KOINE_DISPLAY",
    "KOINE_REPLAY",
    "VSCODE_PID",
    "JPY_SESSION_NAME",
):
    os.environ.pop(_name, None)

_LEDGER_DIR = tempfile.mkdtemp(prefix="koine-test-ledger-")
atexit.register(shutil.rmtree, _LEDGER_DIR, ignore_errors=True)
os.environ["KOINE_LEDGER"] = os.path.join(_LEDGER_DIR, "ledger.sqlite3")
# The suite's own cache folder (platformdirs reads XDG_CACHE_HOME): nothing in the run reads or
# writes the user's real cache, so the SDK used by another program meanwhile cannot touch the
# run, nor the run the user's ledger.
_CACHE_DIR = os.path.join(_LEDGER_DIR, "cache")
os.environ["XDG_CACHE_HOME"] = _CACHE_DIR
# ... and its own state folder: the `koine` command's last session (koine ask --continue).
os.environ["XDG_STATE_HOME"] = os.path.join(_LEDGER_DIR, "state")

# Notebooks under tests/ are fixtures that tests execute themselves, never nbval targets.
collect_ignore_glob = ["tests/**/*.ipynb"]


def _default_ledger() -> str:
    from platformdirs import user_cache_dir

    return os.path.join(user_cache_dir("koine", appauthor=False), "ledger.sqlite3")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything in it (a subprocess, a kernel) used the default ledger instead
    of its own: that would be the user's ledger outside the suite (the suite's cache folder is
    checked, never the user's, so another program using the SDK meanwhile changes nothing)."""
    path = _default_ledger()
    if not path.startswith(_CACHE_DIR):
        return  # a platform whose cache folder ignores XDG_CACHE_HOME: nothing to check
    if os.path.exists(path):
        print(f"\nERROR: the test run used the default ledger ({path}): isolate it")
        session.exitstatus = 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests (markers ``slow`` and ``browser``) run last, so the run shows progress from its
    first second."""

    def slow(item: pytest.Item) -> bool:
        return any(item.get_closest_marker(name) for name in ("slow", "browser"))

    items.sort(key=slow)  # a stable sort: the rest keep their order


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    """One line at the end naming why tests were skipped (a clone with every extra installed
    skips only the browser test, when Chromium or JupyterLab is missing)."""
    reasons: set[str] = set()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reasons.add(str(longrepr[2]).removeprefix("Skipped: "))
    if reasons:
        terminalreporter.write_line("skipped because: " + "; ".join(sorted(reasons)))
