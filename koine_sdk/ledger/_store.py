"""The ledger's typed reads and writes: runs, requests (one row written and committed as each
request finishes), claims, the history frames. Every SQL statement of the project is in this
package (``_schema``, ``_claims``, ``_connections`` and here)."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from . import _claims, _schema
from ._connections import Connections, LedgerWarning, ledger_error
from ._key import RequestShape
from ._records import (
    RECORD_COLUMNS,
    ClaimResult,
    LedgerRecord,
    NearRecording,
    RunSummary,
    RunTotals,
    decode_text,
    encode_text,
    mapping_of,
    record_of,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Ledger", "LedgerRecord", "LedgerWarning"]

SCHEMA_VERSION = _schema.SCHEMA_VERSION
_LOOKUP_BATCH = 500  # keys per SELECT (SQLite allows 32,766 parameters; small batches stay fast)


class Ledger(Connections):
    """A durable record of requests and their answers: cache, checkpoint and log at once.

    ``Ledger(path)`` opens (or creates) the SQLite file at ``path``; ``Ledger(":memory:")``
    keeps one in this process only. Safe to share between threads; several processes may
    write one file at once (SQLite's WAL mode on a local disk; not on a network filesystem).
    Prompts and answers are stored in plain text, in files only their owner can read (folder
    0700, files 0600). An older ledger is upgraded in place when opened (never losing an
    answer); one this process cannot write is used read-only: its answers are reused, new
    ones are not kept (one :class:`LedgerWarning` says so). A deleted or replaced file is
    noticed at the next use, which uses the file that is there now.

    Raises ``KoineError("LEDGER_ERROR")`` when the file cannot be opened or written (a
    directory that cannot be created, a file that is not a ledger, a lock held too long).
    """

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        *,
        rows: int | None = None,
        params: Mapping[str, Any],
        group: str | None = None,
    ) -> str:
        """Record the start of a run (``kind``: ``"extract"``, ...); returns its id.
        ``params`` are kept as given; ``group`` ties the runs of one Dask call together
        (:meth:`group_runs`)."""
        run_id = uuid.uuid4().hex[:16]
        if not self._writes("the run"):
            return run_id
        with self._db("start a run") as db:
            db.execute(
                "INSERT INTO runs (run_id, kind, status, started, rows, params, host, pid, "
                "dask_group) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    kind,
                    time.time(),
                    rows,
                    encode_text(_dumps(params)),
                    socket.gethostname(),
                    os.getpid(),
                    encode_text(group),
                ),
            )
        return run_id

    def finish_run(self, run_id: str, *, status: str, stats: Mapping[str, Any] | str) -> None:
        """Record how a run ended (``status``: ``"done"``, ``"interrupted"``, ``"failed"``...).
        ``stats`` is the caller's (a mapping, or its JSON text), stored as it is."""
        if not self._writes("the run's end"):
            return
        text = stats if isinstance(stats, str) else _dumps(stats)
        with self._db("finish a run") as db:
            db.execute(
                "UPDATE runs SET status = ?, ended = ?, stats = ? WHERE run_id = ?",
                (status, time.time(), encode_text(text), run_id),
            )

    def run_totals(self, run_id: str) -> RunTotals:
        """What ``run_id`` committed so far: requests and their tokens."""
        with self._db("read a run") as db:
            count, tokens_in, tokens_out = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), "
                "COALESCE(SUM(output_tokens), 0) FROM requests WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        try:
            return RunTotals(int(count), int(tokens_in), int(tokens_out))
        except (TypeError, ValueError):
            return RunTotals(0, 0, 0)

    def group_runs(self, group: str, *, kind: str = "extract") -> list[RunSummary]:
        """The runs of one Dask ``group`` (see :meth:`start_run`), with what each committed
        when it has not ended."""
        if not self._has("runs", "dask_group"):  # an older, read-only ledger
            return []
        with self._db("read the runs") as db:
            rows = db.execute(
                "SELECT run_id, kind, status, started, ended, rows, params, stats, dask_group "
                "FROM runs WHERE dask_group = ? AND kind = ? ORDER BY started",
                (group, kind),
            ).fetchall()
        found: list[RunSummary] = []
        for row in rows:
            run = _run_of(row)
            if run is None:
                continue
            if run.stats is None:
                run = _with_totals(run, self.run_totals(run.run_id))
            found.append(run)
        return found

    # -- requests ---------------------------------------------------------------------------

    def record(
        self,
        shape: RequestShape,
        prompt: str,
        *,
        status: str,
        key: str | None = None,
        run_id: str | None = None,
        answer: str | None = None,
        raw_text: str | None = None,
        received: str | None = None,
        answered_by: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        session_id: str | None = None,
        attempts: int = 1,
        started: float | None = None,
        finished: float | None = None,
    ) -> None:
        """Write (and commit) one finished request. ``shape`` is the rest of its body
        (:meth:`RequestShape.of`); ``status`` is ``"ok"`` or ``"failed"``. ``received`` is the
        answer as the gateway returned it (for objects, its JSON before validation);
        ``answered_by`` the model that answered. Any str is kept as it is (lone surrogates
        included). On a read-only ledger nothing is written (one warning)."""
        if status not in ("ok", "failed"):
            raise ValueError(f"status must be 'ok' or 'failed' (got {status!r})")
        if not self._writes("this answer"):
            return
        tools = json.dumps(list(shape.allowed_tools)) if shape.allowed_tools is not None else None
        t = encode_text
        with self._db("record a request") as db:
            for digest, content in (
                (shape.schema_hash, shape.schema_json),
                (shape.system_hash, shape.system),
            ):
                if digest is not None and content is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO blobs (hash, content) VALUES (?, ?)",
                        (digest, t(content)),
                    )
            db.execute(
                "INSERT INTO requests (key, run_id, endpoint, prompt, system_hash, schema_hash, "
                "model, allowed_tools, session_in, status, error_code, error_message, answer, "
                "raw_text, input_tokens, output_tokens, session_id, attempts, started, finished, "
                "received, answered_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key if key is not None else shape.key(prompt),
                    run_id,
                    shape.path,
                    t(prompt),
                    shape.system_hash,
                    shape.schema_hash,
                    t(shape.model),
                    t(tools),
                    t(shape.session_id),
                    status,
                    t(error_code),
                    t(error_message),
                    t(answer),
                    t(raw_text),
                    input_tokens,
                    output_tokens,
                    t(session_id),
                    attempts,
                    started,
                    finished if finished is not None else time.time(),
                    t(received),
                    t(answered_by if answered_by is not None else shape.model),
                ),
            )

    def record_request(self, path: str, body: Mapping[str, Any], **outcome: Any) -> None:
        """:meth:`record` for one request given as its wire body (``prompt`` included)."""
        self.record(RequestShape.of(path, body), str(body["prompt"]), **outcome)

    def lookup(self, keys: Iterable[str]) -> dict[str, LedgerRecord]:
        """The best record of each key that has one: its latest success, else its latest
        failure. Records whose columns have the wrong types are skipped."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, LedgerRecord] = {}
        with self._db("look up answers") as db:
            select = self._select("requests", RECORD_COLUMNS)
            for start in range(0, len(wanted), _LOOKUP_BATCH):
                batch = wanted[start : start + _LOOKUP_BATCH]
                marks = ",".join("?" * len(batch))
                rows = db.execute(
                    f"SELECT {select} FROM requests WHERE key IN ({marks}) ORDER BY id", batch
                ).fetchall()
                for row in rows:
                    rec = record_of(row)
                    if rec is None:
                        continue
                    old = found.get(rec.key)
                    if old is None or rec.ok or not old.ok:
                        found[rec.key] = rec
        return found

    def get(self, key: str) -> LedgerRecord | None:
        """The best record of one key (see :meth:`lookup`), or ``None``."""
        return self.lookup([key]).get(key)

    def nearest(self, prompt: str, endpoints: Sequence[str]) -> NearRecording | None:
        """The latest successful recording of ``prompt`` on one of ``endpoints`` (whatever
        else its request had), to say what differs from it."""
        marks = ",".join("?" * len(endpoints))
        with self._db("look up a prompt") as db:
            row = db.execute(
                "SELECT model, session_in, system_hash, schema_hash, allowed_tools FROM requests "
                f"WHERE prompt = ? AND status = 'ok' AND endpoint IN ({marks}) "
                "ORDER BY id DESC LIMIT 1",
                (encode_text(prompt), *endpoints),
            ).fetchone()
        if row is None:
            return None
        try:
            return NearRecording(*(decode_text(v) for v in row))
        except ValueError:
            return None

    def clear(self) -> None:
        """Forget every request and run (the next calls pay again for every answer)."""
        if self.read_only:
            raise ledger_error(f"cannot clear the ledger {self}: it is read-only here")
        with self._db("clear") as db:
            db.execute("DELETE FROM requests")
            db.execute("DELETE FROM runs")
            db.execute("DELETE FROM blobs")
            if "claims" in {r[0] for r in db.execute("SELECT name FROM sqlite_master")}:
                db.execute("DELETE FROM claims")

    # -- claims: a key being asked ------------------------------------------------------------

    def claim(self, keys: Iterable[str], owner: str, ttl: float = 60.0) -> ClaimResult:
        """Claim ``keys`` for ``owner`` for ``ttl`` seconds before asking for them: the keys
        free (or whose claim expired, or already ``owner``'s: renewed) are granted, the
        others are held by another owner (wait for their answers: :meth:`wait_for`). A
        read-only ledger grants every key (nobody can share answers through it)."""
        wanted = list(dict.fromkeys(keys))
        if self.read_only:
            return ClaimResult(frozenset(wanted))
        with self._db("claim keys") as db:
            return _claims.claim(db, wanted, owner, ttl, time.time())

    def renew(self, keys: Iterable[str], owner: str, ttl: float = 60.0) -> int:
        """Extend ``owner``'s claims on ``keys`` by ``ttl`` seconds from now (while the
        requests are alive); returns how many it still held."""
        if self.read_only:
            return 0
        with self._db("renew claims") as db:
            return _claims.renew(db, list(keys), owner, ttl, time.time())

    def release(self, keys: Iterable[str], owner: str) -> None:
        """Drop ``owner``'s claims on ``keys`` (its answers are written, or it gave up)."""
        if self.read_only:
            return
        with self._db("release claims") as db:
            _claims.release(db, list(keys), owner)

    def wait_for(
        self, keys: Iterable[str], timeout: float, *, poll: float = 0.05
    ) -> dict[str, LedgerRecord]:
        """Wait until every key has a successful record or no live claim (its owner finished
        without an answer, released it, or died and its claim expired), at most ``timeout``
        seconds. Returns the successful records found (a key missing from it: ask for it,
        after claiming it)."""
        wanted = list(dict.fromkeys(keys))
        deadline = time.monotonic() + max(0.0, timeout)
        delay = poll
        while True:
            found = {k: r for k, r in self.lookup(wanted).items() if r.ok}
            rest = [k for k in wanted if k not in found]
            if not rest or self.read_only:
                return found
            with self._db("read claims") as db:
                live = _claims.live_claims(db, rest, time.time())
            if not live or time.monotonic() >= deadline:
                return found
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)

    # -- reading ----------------------------------------------------------------------------

    def runs(self, *, limit: int | None = None) -> pd.DataFrame:
        """The runs, newest first, as a DataFrame (needs pandas)."""
        from ._frames import runs_frame

        sql = (
            "SELECT run_id, kind, status, started, ended, rows, params, stats FROM runs "
            "ORDER BY started DESC" + (" LIMIT ?" if limit is not None else "")
        )
        raw = self._query(sql, [limit] if limit is not None else [])
        return runs_frame([_texts(r) for r in raw])

    def rows(
        self, run_id: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """The recorded requests (all, or those of ``run_id``; ``status="ok"``/``"failed"``),
        oldest first, as a DataFrame: prompt, system, answer, the model that answered,
        status, error, tokens, attempts, timings (needs pandas)."""
        from ._frames import ROW_COLUMNS, rows_frame

        where: list[str] = []
        params: list[Any] = []
        if run_id is not None:
            where.append("r.run_id = ?")
            params.append(run_id)
        if status is not None:
            where.append("r.status = ?")
            params.append(status)
        select = ", ".join(
            "s.content"
            if name == "system"
            else (f"r.{name}" if self._has("requests", name) else f"NULL AS {name}")
            for name in ROW_COLUMNS
        )
        sql = (
            f"SELECT {select} FROM requests r LEFT JOIN blobs s ON s.hash = r.system_hash"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY r.id"
            + (" LIMIT ?" if limit is not None else "")
        )
        if limit is not None:
            params.append(limit)
        return rows_frame([_texts(r) for r in self._query(sql, params)])


def _texts(row: Sequence[Any]) -> tuple[Any, ...]:
    """A row with its BLOB-stored texts (lone surrogates) read back as str."""
    out: list[Any] = []
    for value in row:
        if isinstance(value, bytes):
            try:
                value = decode_text(value)
            except ValueError:
                value = None
        out.append(value)
    return tuple(out)


def _run_of(row: Sequence[Any]) -> RunSummary | None:
    run_id, kind, status, started, ended, rows, params, stats, group = _texts(row)
    if not all(isinstance(v, str) for v in (run_id, kind, status)):
        return None
    if isinstance(started, bool) or not isinstance(started, int | float):
        return None
    return RunSummary(
        run_id=run_id,
        kind=kind,
        status=status,
        started=float(started),
        ended=float(ended) if isinstance(ended, int | float) else None,
        rows=rows if isinstance(rows, int) else None,
        params=mapping_of(params) or {},
        stats=mapping_of(stats),
        group=group if isinstance(group, str) else None,
    )


def _with_totals(run: RunSummary, totals: RunTotals) -> RunSummary:
    return replace(run, committed=totals)


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
