"""Checks of the teaching notebooks as files (nbval re-executes them separately).

The notebooks in ``notebooks/`` are saved *with* their outputs, both to read well on GitHub and
as nbval's reference. These tests check that the saved state is a clean top-to-bottom run.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
IDS = [p.name for p in PATHS]


def _read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def _code_cells(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _texts(output: Any) -> list[str]:
    """Every string of an output (stream text, each mime type, error fields)."""
    if output.output_type == "stream":
        return [output.text]
    if output.output_type == "error":
        return [output.ename, output.evalue, *output.traceback]
    return [v if isinstance(v, str) else repr(v) for v in output.get("data", {}).values()]


def test_there_are_notebooks() -> None:
    assert len(PATHS) >= 3, PATHS


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_notebook_is_valid_with_python3_kernel(path: Path) -> None:
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_saved_as_one_top_to_bottom_run(path: Path) -> None:
    counts = [c.execution_count for c in _code_cells(_read(path))]
    assert counts == list(range(1, len(counts) + 1)), counts


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_errors_only_where_expected(path: Path) -> None:
    for cell in _code_cells(_read(path)):
        expected = "raises-exception" in cell.metadata.get("tags", [])
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert bool(errors) == expected, (cell.id, cell.source[:80])


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_outputs_hold_no_widgets_keys_or_local_paths(path: Path) -> None:
    """Saved outputs must render without a kernel (no widget views), and must not leak the
    local gateway's key or the machine's paths."""
    for cell in _code_cells(_read(path)):
        for output in cell.outputs:
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {})
            for text in _texts(output):
                assert "koine-local-" not in text, cell.id
                assert str(ROOT) not in text, cell.id
                assert "Traceback (most recent call last)" not in text, cell.id


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_every_answer_is_saved_once(path: Path) -> None:
    """A finished live view is an empty placeholder (and, in display-handle mode, empty
    displays that held finished paragraphs); the answer is the cell's result, once."""
    for cell in _code_cells(_read(path)):
        results = [o for o in cell.outputs if o.output_type == "execute_result"]
        assert len(results) <= 1, cell.id
        for output in cell.outputs:
            if output.output_type == "display_data":
                assert output.data in ({"text/plain": ""}, {}), (cell.id, output.data)


def test_readme_lists_every_notebook() -> None:
    readme = (NOTEBOOKS / "README.md").read_text(encoding="utf-8")
    for path in PATHS:
        assert path.name in readme, path.name


def test_sanitize_file_has_valid_rules() -> None:
    text = (NOTEBOOKS / "nbval-sanitize.cfg").read_text(encoding="utf-8")
    # nbval's own parser: a "regex:" line directly followed by a "replace:" line
    rules = re.findall(r"^regex: (.*)$\n^replace: (.*)$", text, flags=re.MULTILINE)
    assert len(rules) == text.count("regex:") >= 2
    for pattern, replacement in rules:
        re.sub(pattern, replacement, "")  # compiles, and the replacement's groups exist
    sanitized = "http://127.0.0.1:41234/x 3f2b8c1e-0d4a-4b6e-9a7c-5e1f2d3c4b5a"
    sanitized += " display: auto (now: widget)"
    for pattern, replacement in rules:
        sanitized = re.sub(pattern, replacement, sanitized)
    assert sanitized == "http://127.0.0.1:PORT/x UUID display: auto (now: MODE)"


def test_data_set_is_realistic_and_complete() -> None:
    with (NOTEBOOKS / "data" / "support_tickets.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert 30 <= len(rows) <= 60
    assert list(rows[0]) == ["ticket_id", "received", "channel", "plan", "text"]
    assert len({r["ticket_id"] for r in rows}) == len(rows)
    assert sum(1 for r in rows if not r["text"]) == 1  # the row that shows extract's errors
