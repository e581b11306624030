"""The ledger as pandas DataFrames (pandas is imported here only, on first use). The rows come
from the store's typed reads (:meth:`Ledger._run_rows`, :meth:`Ledger._request_rows`); this
module only shapes them, and knows nothing of SQL."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

__all__ = ["REQUEST_COLUMNS", "RUN_COLUMNS", "rows_frame", "runs_frame"]

_STATS = ("requests", "succeeded", "failed", "ledger_hits", "input_tokens", "output_tokens")


def _times(pd_mod: Any, values: Any) -> Any:
    return pd_mod.to_datetime(pd_mod.Series(values, dtype="Float64"), unit="s", utc=True)


def _pandas() -> Any:
    import pandas

    return cast(Any, pandas)


RUN_COLUMNS = ("run_id", "kind", "status", "started", "ended", "rows", "params", "stats")
REQUEST_COLUMNS = (
    "id", "run_id", "endpoint", "prompt", "system", "model", "status", "error_code",
    "error_message", "answer", "input_tokens", "output_tokens", "attempts", "session_id",
    "started", "finished", "key",
)  # fmt: skip


def runs_frame(raw: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of :data:`RUN_COLUMNS`, newest first, as the ``runs()`` DataFrame."""
    pd = _pandas()

    records: list[dict[str, Any]] = []
    for run_id, kind, status, started, ended, rows, params, stats in raw:
        p: dict[str, Any] = json.loads(params) if params else {}
        s: dict[str, Any] = json.loads(stats) if stats else {}
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
        error = s.get("error")
        record["error"] = error if isinstance(error, str) else None
        records.append(record)
    columns = ["run_id", "kind", "status", "started", "ended", "seconds", "rows", *_STATS]
    columns += ["prompt", "schema", "model", "error"]
    df: Any = pd.DataFrame.from_records(records, columns=[c for c in columns if c != "seconds"])
    started, ended = _times(pd, df["started"]), _times(pd, df["ended"])
    df["seconds"] = (ended - started).dt.total_seconds().astype("Float64").round(3)
    df["started"], df["ended"] = started, ended
    for name in ("rows", *_STATS):
        df[name] = df[name].astype("Int64")
    for name in ("run_id", "kind", "status", "prompt", "schema", "model", "error"):
        df[name] = df[name].astype("string")
    return df[columns].set_index("run_id")


def rows_frame(raw: Sequence[tuple[Any, ...]]) -> pd.DataFrame:
    """Rows of :data:`REQUEST_COLUMNS`, oldest first, as the ``rows()`` DataFrame."""
    pd = _pandas()
    columns = list(REQUEST_COLUMNS)
    df: Any = pd.DataFrame.from_records(raw, columns=columns)
    error = df["error_code"].astype("string") + ": " + df["error_message"].astype("string")
    df.insert(df.columns.get_loc("error_code"), "error", error)
    df = df.drop(columns=["error_code", "error_message"])
    started, finished = _times(pd, df["started"]), _times(pd, df["finished"])
    df["seconds"] = (finished - started).dt.total_seconds().astype("Float64").round(3)
    df["started"], df["finished"] = started, finished
    for name in ("input_tokens", "output_tokens", "attempts"):
        df[name] = df[name].astype("Int64")
    for name in ("run_id", "endpoint", "prompt", "system", "model", "status", "answer"):
        df[name] = df[name].astype("string")
    for name in ("session_id", "key"):
        df[name] = df[name].astype("string")
    return df.set_index("id")
