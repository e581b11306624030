"""Tables in and out by extension: CSV, JSON Lines and Parquet (pandas; Parquet: pyarrow); the
output is the input's columns and then the result's (:func:`output_names`, :func:`joined`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._common import UsageError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
PREFIX = "koine_"
"""Put before a result column whose name is already an input column's: ``text`` becomes
``koine_text``."""


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
        frame = pd.read_parquet(path)
        if any(name is not None for name in frame.index.names):
            frame = frame.reset_index()  # a named index (``id``) is one of the input's columns
        return frame
    except ImportError as exc:
        raise UsageError(f"input {path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"input {path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"input {path}: not a readable {kind} file: {exc}") from None


def output_names(inputs: list[str], results: list[str], path: str) -> dict[str, str]:
    """Each result column's name in the output: its own, or :data:`PREFIX` and its own when an
    input column has that name. A ``UsageError`` (before anything is sent) when that is taken
    too."""
    names: dict[str, str] = {}
    for name in results:
        if name not in inputs:
            names[name] = name
            continue
        prefixed = PREFIX + name
        if prefixed in inputs or prefixed in results:
            raise UsageError(
                f"input {path}: has columns {name!r} and {prefixed!r}, so the result's column "
                f"{name!r} has no free name; rename one of them"
            )
        names[name] = prefixed
    return names


def joined(frame: Any, result: Any, names: dict[str, str]) -> Any:
    """The input's columns, then the result's (renamed by ``names``), row by row in input
    order (the result is aligned to the input, whatever its index)."""
    pd: Any = _pandas()
    if len(frame) != len(result):  # never: every input row has a result row
        raise RuntimeError(f"{len(result)} result rows for {len(frame)} input rows")
    left = frame.reset_index(drop=True)
    right = result.rename(columns=names).reset_index(drop=True)
    return pd.concat([left, right], axis=1)


def check_writable(frame: Any, path: str) -> None:
    """A ``UsageError`` before anything is sent when the input's columns cannot go into the
    output's format (Parquet: a column of mixed types, say); the result's columns always can."""
    if table_format(path, "output") != "parquet":
        return
    try:
        import pyarrow

        arrow: Any = pyarrow
        arrow.Table.from_pandas(frame, preserve_index=False)
    except ImportError as exc:
        raise UsageError(f"output {path}: {exc}") from None
    except (ValueError, TypeError) as exc:  # pyarrow's ArrowInvalid, ArrowTypeError
        raise UsageError(
            f"output {path}: the input's columns cannot go into Parquet: {exc}"
        ) from None


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
    except (ValueError, TypeError) as exc:  # pyarrow's errors are these too: mixed-type columns
        raise UsageError(
            f"output {path}: cannot write this table as {kind}: {exc} (the answers are in the "
            "ledger: the same command with another output format pays nothing)"
        ) from None
