"""A notebook with ``%koine replay on`` recorded once against the local gateway, then re-executed
in a real kernel (nbclient) with no gateway to reach: the same outputs, zero requests. In strict
replay, a cell whose prompt changed fails naming it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
from _kernels import kernel_env, new_notebook
from nbclient import NotebookClient

DEAD_URL = "http://127.0.0.1:9"

CELLS = [
    "%load_ext koine_jupyter\n%koine replay on",
    "from pydantic import BaseModel\n\n"
    "class Recipe(BaseModel):\n    title: str\n    servings: int\n    steps: list[str]",
    "%%koine --session chat\nMy name is Ada. [[chunks=6]]",
    "%%koine --session chat\nWhat is my name? [[history]]",
    "%%koine --schema Recipe\nA pancake recipe [[items=3]]",
    "%koine --no-stream --schema Recipe Soup for two",
    "bread = %koine --schema Recipe Bread\nbread.title, bread.servings",
    "%koine --no-stream --format code A haiku about rivers",
    "from koine_sdk import create_koine_sync\n\n"
    "with create_koine_sync() as k:  # KOINE_REPLAY / the environment, as the magic\n"
    "    print(k.generate_text(prompt='From the SDK').text)",
]


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(old)


def _execute(cells: list[str], env: dict[str, str], tmp_path: Path) -> nbformat.NotebookNode:
    nb = new_notebook(cells)
    client = NotebookClient(
        nb, timeout=60, kernel_name="python3", allow_errors=True, record_timing=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )  # fmt: skip
    with _environ(env):
        client.execute()
    return nb


def _shown(nb: nbformat.NotebookNode) -> list[list[Any]]:
    """What each cell shows: the data of its outputs. Left out: metadata (it carries the
    provenance) and empty displays (a live view that drew finished blocks leaves one behind,
    showing nothing; how many depends on how fast the answer came)."""
    cells: list[list[Any]] = []
    for cell in nb.cells:
        shown: list[Any] = []
        for out in cell.outputs:
            if out.output_type == "display_data" and not out.data:
                continue
            if out.output_type == "stream":
                shown.append((out.name, out.text))
            elif out.output_type == "error":
                shown.append(("error", out.ename, out.evalue))
            else:
                shown.append((out.output_type, out.get("data")))
        cells.append(shown)
    return cells


def _errors(nb: nbformat.NotebookNode) -> list[Any]:
    return [o for c in nb.cells for o in c.outputs if o.output_type == "error"]


def _koine_metadata(nb: nbformat.NotebookNode, index: int) -> dict[str, Any]:
    (result,) = [o for o in nb.cells[index].outputs if o.output_type == "execute_result"]
    return dict(result.metadata["koine"])


def test_a_recorded_notebook_reexecutes_offline_identically(
    koine_gateway_server: Any, tmp_path: Path
) -> None:
    gateway = koine_gateway_server
    gateway.reset()
    ledger = str(tmp_path / "notebook-ledger.sqlite3")
    live_env = kernel_env(gateway, KOINE_LEDGER=ledger)
    recorded = _execute(CELLS, live_env, tmp_path)
    assert _errors(recorded) == []
    sent = len(gateway.requests)
    assert sent == 7  # every question once
    assert "Ada" in str(_shown(recorded)[3])  # the conversation went on at the gateway

    offline_env = {**live_env, "KOINE_BASE_URL": DEAD_URL}  # nothing answers there
    replayed = _execute(CELLS, offline_env, tmp_path)
    assert _errors(replayed) == []
    assert _shown(replayed) == _shown(recorded)
    assert len(gateway.requests) == sent  # zero requests

    # every answer says where it came from, text and --schema alike, with the same key
    for index in (2, 3, 4, 5, 7):
        live, again = _koine_metadata(recorded, index), _koine_metadata(replayed, index)
        assert (live["source"], again["source"]) == ("live", "replay"), index
        assert live["ledger_key"] == again["ledger_key"], index
        assert again["tokens"] == live["tokens"] and again["tokens"]["total"] > 0
    assert _koine_metadata(replayed, 3)["session"] == "chat"

    # strict replay: one changed prompt fails its cell, naming it; the rest still replays
    changed = list(CELLS)
    changed[0] = "%load_ext koine_jupyter\n%koine replay strict"
    changed[4] = "%%koine --schema Recipe\nA waffle recipe [[items=3]]"
    strict = _execute(changed, offline_env, tmp_path)
    (error,) = _errors(strict)
    assert error.ename == "KoineError"
    text = "\n".join(error.traceback)
    assert "REPLAY_MISS" in text and "A waffle recipe [[items=3]]" in text
    assert "%koine replay on" in text
    assert error in strict.cells[4].outputs
    shown, before = _shown(strict), _shown(recorded)
    assert shown[1:4] == before[1:4] and shown[5:] == before[5:]
    assert len(gateway.requests) == sent
