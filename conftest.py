"""Repository-wide pytest setup.

The notebooks under notebooks/ are re-executed by nbval in kernels that inherit this
process's environment. Their saved outputs were made on the offline local gateway in a
plain kernel, so a run must not pick up a real gateway (KOINE_BASE_URL/KOINE_AUTH_KEY: the
outputs would differ and it would spend tokens), a forced display mode (KOINE_DISPLAY) or an
editor's markers that make views choose widgets (VSCODE_PID, JPY_SESSION_NAME).
"""

from __future__ import annotations

import os

for _name in (
    "KOINE_BASE_URL",
    "KOINE_AUTH_KEY",
    "KOINE_DISPLAY",
    "VSCODE_PID",
    "JPY_SESSION_NAME",
):
    os.environ.pop(_name, None)

# Notebooks under tests/ are fixtures that tests execute themselves, never nbval targets.
collect_ignore_glob = ["tests/**/*.ipynb"]
