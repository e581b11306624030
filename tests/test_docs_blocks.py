"""Every Python example of README.md and docs/*.md runs as printed, alone, in a fresh
interpreter, against the local gateway (KOINE_BASE_URL/KOINE_AUTH_KEY set, as the README says to).

A block that cannot run alone says so in the Markdown, on the line before its fence:
``<!-- docs-test: skip (the reason) -->`` (a notebook cell with ``%%koine``, a fragment of the
example above it); the reason is required and shown by pytest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(
    r"(?:<!-- docs-test: skip \((?P<why>[^)]+)\) -->\n)?```python\n(?P<code>.*?)^```[ \t]*$",
    re.S | re.M,
)
_SKIP_ANY = re.compile(r"^<!-- docs-test: skip", re.M)


def _blocks() -> list[Any]:
    params: list[Any] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for n, match in enumerate(_BLOCK.finditer(text), start=1):
            line = text.count("\n", 0, match.start()) + 1
            name = f"{page.relative_to(ROOT)}:{line}"
            marks = [pytest.mark.skip(reason=match["why"])] if match["why"] else []
            params.append(pytest.param(match["code"], id=f"{name}#{n}", marks=marks))
    return params


def test_every_skip_marker_names_a_reason_and_a_block() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        markers = len(_SKIP_ANY.findall(text))
        assert markers == sum(1 for m in _BLOCK.finditer(text) if m["why"]), page


@pytest.mark.parametrize("code", _blocks())
def test_block_runs_alone(code: str, koine_gateway: Any, tmp_path: Path) -> None:
    code = code.replace("http://localhost:3100", koine_gateway.base_url)
    code = code.replace('"your-api-key"', repr(koine_gateway.auth_key))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOINE_")}
    env.update(
        KOINE_BASE_URL=koine_gateway.base_url,
        KOINE_AUTH_KEY=koine_gateway.auth_key,
        KOINE_LEDGER=str(tmp_path / "ledger.sqlite3"),
    )
    script = tmp_path / "example.py"  # a file, as a reader would save it (Dask workers import it)
    script.write_text(code, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
