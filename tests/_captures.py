"""Where the captures of the real gateway are: ``tests/captures/`` (raw HTTP exchanges recorded
from gateway 2.3.x; see ``tests/captures/README.md``). They ship with the repository, so every
clone runs the tests that replay them."""

from __future__ import annotations

from pathlib import Path

CAPTURES = Path(__file__).resolve().parent / "captures"
