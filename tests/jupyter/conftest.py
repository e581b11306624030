"""The IPython shell of the magic tests (no kernel: text mode unless a test forces another)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

_NAMES = ("answer", "r", "df", "City", "Recipe", "Town", "topic", "data", "who", "_")


@pytest.fixture
def ip(koine_gateway: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    monkeypatch.setenv("KOINE_BASE_URL", koine_gateway.base_url)
    monkeypatch.setenv("KOINE_AUTH_KEY", koine_gateway.auth_key)
    monkeypatch.delenv("KOINE_DISPLAY", raising=False)
    # %koine replay sets KOINE_REPLAY: set-then-delete makes monkeypatch undo it after the test
    # (delenv of an absent variable alone would record nothing to undo)
    monkeypatch.setenv("KOINE_REPLAY", "")
    monkeypatch.delenv("KOINE_REPLAY")
    start_ipython()  # once per process; later calls return None
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "koine_jupyter")
    yield shell
    shell.run_line_magic("unload_ext", "koine_jupyter")
    shell.config.pop("KoineMagics", None)
    for name in _NAMES:
        shell.user_ns.pop(name, None)


def magics_of(shell: InteractiveShell) -> Any:
    """The shell's KoineMagics instance."""
    return next(c for c in shell.configurables if type(c).__name__ == "KoineMagics")
