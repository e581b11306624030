"""Helpers for tests that start real kernels: the environment a kernel gets."""

from __future__ import annotations

import os
from typing import Any

import nbformat


def kernel_env(gateway: Any, **extra: str) -> dict[str, str]:
    """This process's environment for a kernel, pointed at ``gateway``, without anything that
    would change the display mode the kernel picks (JupyterLab's, VS Code's, KOINE_DISPLAY)."""
    env = dict(os.environ)
    for name in ("JPY_SESSION_NAME", "KOINE_DISPLAY", "VSCODE_PID"):
        env.pop(name, None)
    env.update(KOINE_BASE_URL=gateway.base_url, KOINE_AUTH_KEY=gateway.auth_key, **extra)
    return env


def new_notebook(cells: list[str]) -> nbformat.NotebookNode:
    """A notebook of code cells for the python3 kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb
