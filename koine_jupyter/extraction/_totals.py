"""The totals of an extraction: a pandas result's own statistics, or, for a Dask result, the sum
of its partitions' runs as the ledgers recorded them.

Every partition of a Dask ``extract`` is one run in the ledger of the worker that ran it, tagged
with the call's group id (``params.dask.group``). :func:`totals` reads those runs from this
process's ledger and, when a ``distributed`` client is connected, from every worker's
(``Client.run``), so it works with per-machine ledgers too. Runs are told apart by their id, so a
file read twice (a shared ledger) counts once. A run that never ended (its worker was killed, or
it still runs) counts with the requests it committed.
"""

from __future__ import annotations

import importlib
import os
import socket
import sys
from typing import TYPE_CHECKING, Any, cast

from koine_sdk import KoineError
from koine_sdk.ledger import MEMORY, Ledger, default_location, open_ledger, process_ledger

from ._lazy import is_dask
from ._options import invalid
from ._stats import RunStats
from ._verbs import VERBS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["group_of", "run_summaries", "totals"]

_SUMMED = ("requests", "throttled", "input_tokens", "output_tokens")
_ROWS = ("rows", "succeeded", "failed", "ledger_hits", "duplicates")
_GATEWAY_SUMMED = ("sent", "ok", "throttled", "waits_429", "connection_failures", "outages")


def _reading(ledger: Any) -> Ledger | None:
    """The ledger ``ledger=`` named, as this process resolves it; ``None`` when that file does
    not exist here (reading never creates one)."""
    if ledger is False:
        return process_ledger()
    where: Any = default_location() if ledger is None else ledger
    if where is None or str(where) == MEMORY:
        return process_ledger()
    path = os.path.abspath(os.path.expanduser(str(where)))
    if not os.path.exists(path):
        return None
    return open_ledger(path, fallback=False)


def run_summaries(group: str, ledger: Any) -> dict[str, Any]:
    """The runs of ``group`` in this process's ledger: ``{"runs": {run_id: summary}, "where":
    ..., "error": ...}`` (JSON-able: it travels back from workers)."""
    where = f"{socket.gethostname()}:{ledger if isinstance(ledger, str) else 'default'}"
    try:
        book = _reading(ledger)
        if book is None:
            return {"runs": {}, "where": where, "error": None}
        where = f"{socket.gethostname()}:{book.path or MEMORY}"
        runs: dict[str, Any] = {}
        found = [run for verb in VERBS for run in book.group_runs(group, verb.name)]
        for run in sorted(found, key=lambda r: r.started or 0.0):
            dask: dict[str, Any] = cast(dict[str, Any], run.params.get("dask") or {})
            summary: dict[str, Any] = {
                "status": run.status,
                "started": run.started,
                "ended": run.ended,
                "rows": run.rows,
                "partition": dask.get("partition"),
                "stats": run.stats,
            }
            if run.stats is None:  # never ended: what it committed
                count, tokens_in, tokens_out = book.committed(run.run_id)
                summary["committed"] = {
                    "requests": count,
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                }
            runs[run.run_id] = summary
        return {"runs": runs, "where": where, "error": None}
    except KoineError as exc:
        return {"runs": {}, "where": where, "error": exc.message}


def group_of(result: Any) -> tuple[str, Any] | None:
    attrs: Any = result._meta.attrs if is_dask(result) else getattr(result, "attrs", None)
    info: Any = cast(dict[str, Any], attrs).get("koine") if isinstance(attrs, dict) else None
    if isinstance(info, dict) and isinstance(cast(dict[str, Any], info).get("group"), str):
        info = cast(dict[str, Any], info)
        return info["group"], info.get("ledger")
    return None


def _collect(group: str, ledger: Any) -> list[dict[str, Any]]:
    found = [run_summaries(group, ledger)]
    if "distributed" not in sys.modules:
        return found
    default_client: Any = importlib.import_module("distributed").default_client
    try:
        client: Any = default_client()
    except ValueError:
        return found  # no cluster connected: this process's ledger is all there is
    answers: dict[str, Any] = client.run(run_summaries, group, ledger, on_error="return")
    for address, answer in answers.items():
        if isinstance(answer, BaseException):
            found.append({"runs": {}, "where": address, "error": repr(answer)})
        else:
            found.append(answer)
    return found


def totals(result: pd.DataFrame | Any) -> dict[str, Any]:
    """The totals of an extraction.

    For a pandas result of ``extract``: its ``attrs["koine"]`` (the run's statistics). For the
    result of ``extract`` on Dask input (the lazy frame, or the pandas frame it computed, also
    read back from Parquet): the sum of its partitions' runs, read from the ledgers (this
    process's, and every worker's when a ``distributed`` client is connected):

    - ``rows``, ``succeeded``, ``failed``, ``ledger_hits``, ``duplicates``: of the latest
      finished run of each partition;
    - ``requests``, ``throttled`` (429s), ``input_tokens``, ``output_tokens``: summed over every
      run, also those that never ended (a killed worker: the requests it committed) — what
      was paid;
    - ``partitions`` (finished), ``runs``, ``unfinished_runs``, ``elapsed`` (first start to
      last end), ``gateways`` (per gateway: requests sent, ok, 429s, outages...), and
      ``ledgers`` read (``errors`` for those that could not be).
    """
    found = group_of(result)
    if found is None:
        attrs: Any = getattr(result, "attrs", None)
        info: Any = cast(dict[str, Any], attrs).get("koine") if isinstance(attrs, dict) else None
        if isinstance(info, dict) and "run_id" in info:
            return dict(cast(dict[str, Any], info))
        raise invalid("totals() takes a result of extract() (a pandas or Dask DataFrame)")
    group, ledger = found
    return _aggregate(group, _collect(group, ledger))


def _aggregate(group: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for answer in answers:
        runs.update(answer["runs"])
    out: dict[str, Any] = {"group": group}
    out.update(dict.fromkeys((*_ROWS, *_SUMMED), 0))
    latest: dict[Any, dict[str, Any]] = {}
    gateways: dict[str, dict[str, Any]] = {}
    unfinished = 0
    for summary in runs.values():
        stats = RunStats.read(summary["stats"])
        if stats is None:
            unfinished += 1
            committed = summary["committed"]
            for key in ("requests", "input_tokens", "output_tokens"):
                out[key] += committed[key]
            continue
        for key in _SUMMED:
            out[key] += getattr(stats, key) or 0
        part = summary["partition"]
        if part not in latest or summary["started"] > latest[part]["started"]:
            latest[part] = summary
        for gw in stats.gateways:
            into = gateways.setdefault(
                gw["base_url"],
                {"base_url": gw["base_url"], "limit": 0, **dict.fromkeys(_GATEWAY_SUMMED, 0)},
            )
            into["limit"] = max(into["limit"], gw.get("limit") or 0)
            for key in _GATEWAY_SUMMED:
                into[key] += gw.get(key) or 0
            into["taken_out"] = bool(into.get("taken_out")) or bool(gw.get("taken_out"))
    for summary in latest.values():
        final = RunStats.read(summary["stats"]) or RunStats()
        for key in _ROWS:
            out[key] += getattr(final, key) or 0
    starts = [s["started"] for s in runs.values() if s["started"] is not None]
    ends = [s["ended"] for s in runs.values() if s["ended"] is not None]
    out["partitions"] = len(latest)
    out["runs"] = len(runs)
    out["unfinished_runs"] = unfinished
    out["elapsed"] = round(max(ends) - min(starts), 3) if starts and ends else None
    out["gateways"] = sorted(gateways.values(), key=lambda g: g["base_url"])
    out["ledgers"] = sorted({a["where"] for a in answers if a["error"] is None})
    out["errors"] = sorted(f"{a['where']}: {a['error']}" for a in answers if a["error"])
    return out
