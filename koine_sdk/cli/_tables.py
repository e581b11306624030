"""Tables in and out by extension: CSV, JSON Lines and Parquet (pandas; Parquet: pyarrow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import UsageError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def table_format(path: str, role: str) -> str:
    """The format of ``path`` by its extension; a ``UsageError`` for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(FORMATS)
        raise UsageError(f"{role} {path}: unknown extension {suffix or '(none)'!r} (use {known})")
    return FORMATS[suffix]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise UsageError("tables need pandas: pip install 'koine-sdk[pandas]'") from None
    return pandas


def read_table(path: str) -> Any:
    """The table at ``path`` (a pandas DataFrame; CSV cells as strings)."""
    kind = table_format(path, "input")
    pd: Any = _pandas()

    try:
        if kind == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        return pd.read_parquet(path)
    except ImportError as exc:
        raise UsageError(f"input {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"input {path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"input {path}: not a readable {kind} file: {exc}") from None


def write_table(frame: Any, path: str) -> None:
    """Write a DataFrame to ``path`` in the format of its extension."""
    kind = table_format(path, "output")
    try:
        if kind == "csv":
            frame.to_csv(path, index=False)
        elif kind == "jsonl":
            frame.to_json(path, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(path, index=False)
    except ImportError as exc:
        raise UsageError(f"output {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"output {path}: cannot write it: {exc.strerror or exc}") from None
