"""The ledger as pandas DataFrames (pandas is imported here only, on first use)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import pandas as pd

    from ._store import Ledger

__all__ = ["rows_frame", "runs_frame"]

_STATS = ("requests", "succeeded", "failed", "ledger_hits", "input_tokens", "output_tokens")


def _times(pd_mod: Any, values: Any) -> Any:
    return pd_mod.to_datetime(pd_mod.Series(values, dtype="Float64"), unit="s", utc=True)


def _pandas() -> Any:
    import pandas

    return cast(Any, pandas)


def runs_frame(ledger: Ledger, *, limit: int | None = None) -> pd.DataFrame:
    pd = _pandas()

    sql = (
        "SELECT run_id, kind, status, started, ended, rows, params, stats FROM runs "
        "ORDER BY started DESC" + (" LIMIT ?" if limit is not None else "")
    )
    raw = ledger.query(sql, [limit] if limit is not None else [])
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
        records.append(record)
    columns = ["run_id", "kind", "status", "started", "ended", "seconds", "rows", *_STATS]
    columns += ["prompt", "schema", "model"]
    df: Any = pd.DataFrame.from_records(records, columns=[c for c in columns if c != "seconds"])
    started, ended = _times(pd, df["started"]), _times(pd, df["ended"])
    df["seconds"] = (ended - started).dt.total_seconds().astype("Float64").round(3)
    df["started"], df["ended"] = started, ended
    for name in ("rows", *_STATS):
        df[name] = df[name].astype("Int64")
    for name in ("run_id", "kind", "status", "prompt", "schema", "model"):
        df[name] = df[name].astype("string")
    return df[columns].set_index("run_id")


def rows_frame(
    ledger: Ledger, *, run_id: str | None, status: str | None, limit: int | None
) -> pd.DataFrame:
    pd = _pandas()

    where: list[str] = []
    params: list[Any] = []
    if run_id is not None:
        where.append("r.run_id = ?")
        params.append(run_id)
    if status is not None:
        where.append("r.status = ?")
        params.append(status)
    sql = (
        "SELECT r.id, r.run_id, r.endpoint, r.prompt, s.content, r.model, r.status, "
        "r.error_code, r.error_message, r.answer, r.input_tokens, r.output_tokens, r.attempts, "
        "r.session_id, r.started, r.finished, r.key FROM requests r "
        "LEFT JOIN blobs s ON s.hash = r.system_hash"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY r.id"
        + (" LIMIT ?" if limit is not None else "")
    )
    if limit is not None:
        params.append(limit)
    raw = ledger.query(sql, params)
    columns = [
        "id", "run_id", "endpoint", "prompt", "system", "model", "status", "error_code",
        "error_message", "answer", "input_tokens", "output_tokens", "attempts", "session_id",
        "started", "finished", "key",
    ]  # fmt: skip
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
