"""The ledger as pandas DataFrames (pandas is imported here only, on first use)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ROW_COLUMNS", "rows_frame", "runs_frame"]

_STATS = ("requests", "succeeded", "failed", "ledger_hits", "input_tokens", "output_tokens")


def _times(pd_mod: Any, values: Any) -> Any:
    return pd_mod.to_datetime(pd_mod.Series(values, dtype="Float64"), unit="s", utc=True)


def _pandas() -> Any:
    import pandas

    return cast(Any, pandas)


def runs_frame(raw: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """``raw``: rows of run_id, kind, status, started, ended, rows, params, stats."""
    pd = _pandas()
    records: list[dict[str, Any]] = []
    for run_id, kind, status, started, ended, rows, params, stats in raw:
        p: dict[str, Any] = _mapping(params)
        s: dict[str, Any] = _mapping(stats)
        record: dict[str, Any] = {
            "run_id": run_id,
            "kind": kind,
            "status": status,
            "started": started,
            "ended": ended,
            "rows": rows,
        }
        for name in _STATS:
            record[name] = s.get(name)
        record["prompt"] = p.get("prompt")
        record["schema"] = p.get("schema")
        record["model"] = p.get("model")
        records.append(record)
    columns = ["run_id", "kind", "status", "started", "ended", "seconds", "rows", *_STATS]
    columns += ["prompt", "schema", "model"]
    df: Any = pd.DataFrame.from_records(records, columns=[c for c in columns if c != "seconds"])
    started, ended = _times(pd, df["started"]), _times(pd, df["ended"])
    df["seconds"] = (ended - started).dt.total_seconds().astype("Float64").round(3)
    df["started"], df["ended"] = started, ended
    for name in ("rows", *_STATS):
        df[name] = pd.to_numeric(df[name], errors="coerce").astype("Int64")
    for name in ("run_id", "kind", "status", "prompt", "schema", "model"):
        df[name] = _strings(df[name])
    return df[columns].set_index("run_id")


ROW_COLUMNS = (
    "id", "run_id", "endpoint", "prompt", "system", "model", "answered_by", "status",
    "error_code", "error_message", "answer", "input_tokens", "output_tokens", "attempts",
    "session_id", "started", "finished", "key",
)  # fmt: skip
"""The columns :func:`rows_frame` reads (``system``: the system prompt's text)."""


def rows_frame(raw: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """``raw``: rows of :data:`ROW_COLUMNS`."""
    pd = _pandas()
    # objects first: a text with lone surrogates cannot become an Arrow string (see _strings)
    df: Any = pd.DataFrame(list(raw), columns=list(ROW_COLUMNS), dtype=object)
    error = _strings(df["error_code"]) + ": " + _strings(df["error_message"])
    df.insert(df.columns.get_loc("error_code"), "error", error)
    df = df.drop(columns=["error_code", "error_message"])
    started, finished = _times(pd, df["started"]), _times(pd, df["finished"])
    df["seconds"] = (finished - started).dt.total_seconds().astype("Float64").round(3)
    df["started"], df["finished"] = started, finished
    for name in ("input_tokens", "output_tokens", "attempts"):
        df[name] = pd.to_numeric(df[name], errors="coerce").astype("Int64")
    for name in ("run_id", "endpoint", "prompt", "system", "model", "answered_by", "status"):
        df[name] = _strings(df[name])
    for name in ("answer", "session_id", "key"):
        df[name] = _strings(df[name])
    return df.set_index("id")


def _mapping(text: Any) -> dict[str, Any]:
    try:
        value: Any = json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return {}
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def _strings(column: Any) -> Any:
    """A string column; one holding lone surrogates (which Arrow strings refuse) stays as
    Python objects, unchanged."""
    try:
        return column.astype("string")
    except UnicodeEncodeError:
        return column
