"""Re-execute the teaching notebooks in place, the way their saved outputs are made.

    python notebooks/refresh.py [NAME.ipynb ...]

Runs each notebook top to bottom on the local gateway (KOINE_* variables are removed from
the kernel's environment; KOINE_LEDGER points at a fresh temporary file, so the run neither
reads nor writes the user's ledger), records no timing metadata, and merges consecutive
stream outputs, so the saved notebook reads well and nbval compares it stably.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    for name in [k for k in os.environ if k.startswith("KOINE_")] + ["JPY_SESSION_NAME"]:
        os.environ.pop(name, None)
    ledger = tempfile.TemporaryDirectory(prefix="koine-refresh-")
    os.environ["KOINE_LEDGER"] = os.path.join(ledger.name, "ledger.sqlite3")
    try:
        NotebookClient(
            nb, timeout=120, kernel_name="python3", record_timing=False,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(saved)
        ledger.cleanup()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        merged: list[nbformat.NotebookNode] = []
        for out in cell.outputs:
            last = merged[-1] if merged else None
            if (
                last is not None
                and out.output_type == "stream"
                and last.output_type == "stream"
                and last.name == out.name
            ):
                last.text += out.text
            else:
                merged.append(out)
        cell.outputs = merged
    nbformat.write(nb, path)
    print(f"refreshed {path.name}")


def main(argv: list[str]) -> int:
    names = argv or sorted(p.name for p in HERE.glob("[0-9]*.ipynb"))
    for name in names:
        refresh(HERE / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
