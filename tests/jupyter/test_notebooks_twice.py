"""The tutorials read true on a second run: executed twice in a row on one machine (one
``KOINE_LEDGER`` for both runs, as a user's cache folder would be), every output of the second
run equals the first (after the rewrites of notebooks/nbval-sanitize.cfg). Each tutorial takes a
fresh ledger in a temporary folder, so the second run cannot be answered by the first one's."""

from __future__ import annotations

import configparser
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
TUTORIALS = [
    "01-quickstart.ipynb",
    "03-extraction-to-dataframes.ipynb",
    "05-three-verbs-and-the-accessor.ipynb",
]


def _rules() -> list[tuple[re.Pattern[str], str]]:
    cfg = configparser.ConfigParser()
    cfg.read(NOTEBOOKS / "nbval-sanitize.cfg")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def _outputs(path: Path, ledger: Path) -> list[list[str]]:
    nb: Any = nbformat.read(path, as_version=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOINE_")}
    env["KOINE_LEDGER"] = str(ledger)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        NotebookClient(
            nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    rules = _rules()
    cells: list[list[str]] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts: list[str] = []
        for out in cell.outputs:
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type == "error":
                texts.append(f"{out.ename}: {out.evalue}")
            else:
                texts.append(str(out.get("data", {}).get("text/plain", "")))
        text = "".join(texts)
        for regex, replace in rules:
            text = regex.sub(replace, text)
        cells.append([text])
    return cells


@pytest.mark.parametrize("name", TUTORIALS)
def test_a_second_run_reads_the_same(name: str, tmp_path: Path) -> None:
    ledger = tmp_path / "shared-ledger.sqlite3"
    first = _outputs(NOTEBOOKS / name, ledger)
    second = _outputs(NOTEBOOKS / name, ledger)
    assert len(first) == len(second)
    for i, (a, b) in enumerate(zip(first, second, strict=True)):
        assert a == b, (name, i, a, b)
    assert not ledger.exists()  # the tutorial used its own temporary ledger, not this one
