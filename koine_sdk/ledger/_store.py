"""The ledger's storage: one SQLite file in WAL mode, one connection per thread (and process),
one row written and committed as each request finishes. Every SQL statement of the project
is in this package (``_schema``, ``_claims`` and here)."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Generator, Iterable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import KoineError
from . import _claims, _files, _schema
from ._key import RequestShape
from ._location import MEMORY
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
_WARNED_READABLE: set[str] = set()


class LedgerWarning(UserWarning):
    """The ledger file could not be used as asked (answers kept in this process only, a
    read-only ledger, a ledger readable by others, triggers or views dropped)."""


def _error(message: str, exc: BaseException | None = None) -> KoineError:
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return KoineError(message + detail, "LEDGER_ERROR")


def _warn(message: str) -> None:
    warnings.warn(message, LedgerWarning, stacklevel=4)


class _Conn:
    """A connection and the file generation it was opened on."""

    __slots__ = ("db", "generation", "pid")

    def __init__(self, db: sqlite3.Connection, generation: int) -> None:
        self.db, self.generation, self.pid = db, generation, os.getpid()


class Ledger:
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

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.in_memory = str(path) == MEMORY
        self.path: Path | None = None if self.in_memory else Path(path).expanduser()
        self.timeout = timeout
        self.read_only = False
        self._local = threading.local()
        self._lock = threading.RLock()
        self._conns: list[_Conn] = []
        self._shared: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        self._generation = 0
        self._identity: tuple[int, int] | None = None
        self._columns: dict[str, frozenset[str]] = {}
        self._warned_read_only = False
        if self.path is not None:
            try:
                _files.make_folder(self.path.parent)
            except OSError as exc:
                raise _error(f"cannot create the ledger's folder {self.path.parent}", exc) from None
            existed = self.path.exists()
            self.read_only = not _files.writable(self.path)
            self._connect()  # open now: a bad file fails here, before any request is sent
            where = str(self.path.resolve())
            if existed and _files.readable_by_others(self.path) and where not in _WARNED_READABLE:
                _WARNED_READABLE.add(where)
                _warn(
                    f"the ledger {self.path} can be read by other users of this machine "
                    f"(prompts and answers are stored in plain text): chmod 600 {self.path}"
                )
        else:
            self._connect()

    def __repr__(self) -> str:
        return f"Ledger({MEMORY if self.path is None else str(self.path)!r})"

    # -- connections --------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        where = MEMORY if self.path is None else str(self.path)
        try:
            if self.path is not None and self.read_only:
                conn = self._open_read_only(self.path)
            else:
                with _files.private_umask() if self.path is not None else nullcontext():
                    conn = sqlite3.connect(
                        where, timeout=self.timeout, isolation_level=None, check_same_thread=False
                    )
                    self._setup(conn)
                if self.path is not None:
                    _files.private_files(self.path)
        except sqlite3.Error as exc:
            raise _error(
                f"the ledger {where} cannot be used (corrupt, locked, or not a ledger; move it "
                "away, or choose another file with KOINE_LEDGER or ledger=)",
                exc,
            ) from None
        return conn

    def _open_read_only(self, path: Path) -> sqlite3.Connection:
        """A ledger this process cannot write: ``mode=ro`` (WAL needs its ``-shm``; a folder
        that cannot be written either is opened as ``immutable``)."""
        quoted = urllib.parse.quote(str(path.resolve()))
        last: sqlite3.Error | None = None
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(
                    f"file:{quoted}?{flags}",
                    uri=True,
                    timeout=self.timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                conn.execute("PRAGMA trusted_schema = OFF")
                _schema.check_readable(conn)
                self._columns = {t: _schema.columns(conn, t) for t in ("requests", "runs")}
                return conn
            except sqlite3.Error as exc:
                conn.close()
                last = exc
        assert last is not None
        raise last

    def _setup(self, conn: sqlite3.Connection) -> None:
        """WAL mode, no triggers or views, the format brought up to date. Connections opening
        a new file at the same moment can be refused with "database is locked" without
        SQLite's busy handler being asked (switching to WAL, the first schema write):
        retried here until ``timeout``."""
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA trusted_schema = OFF")
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                self._setup_once(conn)
                return
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if ("locked" not in message and "busy" not in message) or (
                    time.monotonic() + delay > deadline
                ):
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _setup_once(self, conn: sqlite3.Connection) -> None:
        if self.path is not None:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is needed")
            # WAL + NORMAL: a commit survives a crash or kill -9 of this process (it may be
            # lost only with the machine, on power loss), at a fraction of FULL's cost.
            conn.execute("PRAGMA synchronous = NORMAL")
        self._drop_code(conn)
        _schema.migrate(conn)
        self._columns = {t: _schema.columns(conn, t) for t in ("requests", "runs")}

    def _drop_code(self, conn: sqlite3.Connection) -> None:
        """A ledger is data: triggers and views (which a shipped file could use to rewrite
        answers) are dropped, and said so."""
        found = conn.execute(
            "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')"
        ).fetchall()
        if not found:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for kind, name in found:
                quoted = '"' + str(name).replace('"', '""') + '"'
                conn.execute(
                    f"DROP {'TRIGGER' if kind == 'trigger' else 'VIEW'} IF EXISTS {quoted}"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        names = ", ".join(f"{kind} {name!r}" for kind, name in found)
        _warn(f"the ledger {self} held code, not data ({names}): dropped")

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise _error("the ledger is closed")
        if self.path is None:
            if self._shared is None:
                self._shared = self._open()
            return self._shared
        if os.getpid() != self._pid:  # a forked child: never use the parent's connections
            self._pid = os.getpid()
            self._local = threading.local()
            self._conns = []
        self._check_file()
        mine: _Conn | None = getattr(self._local, "conn", None)
        if mine is not None and mine.generation != self._generation:
            self._forget(mine)
            mine = None
        if mine is None:
            with self._lock:
                generation = self._generation
                mine = _Conn(self._open(), generation)
                if self._identity is None:
                    self._identity = _files.identity(self.path)
                self._conns.append(mine)
            self._local.conn = mine
        return mine.db

    def _check_file(self) -> None:
        """The file on disk is the truth: when it was deleted or replaced since it was opened,
        every connection to the old one is retired (each thread's on its next use)."""
        assert self.path is not None
        if self._identity is None:
            return
        now = _files.identity(self.path)
        if now == self._identity:
            return
        with self._lock:
            if _files.identity(self.path) != self._identity:
                self._generation += 1
                self._identity = None
                self.read_only = not _files.writable(self.path)
                self._warned_read_only = False

    def _forget(self, conn: _Conn) -> None:
        with self._lock:
            if conn in self._conns:
                self._conns.remove(conn)
        try:
            conn.db.close()
        except sqlite3.Error:
            pass
        self._local.conn = None

    @contextmanager
    def _db(self, what: str) -> Generator[sqlite3.Connection]:
        with self._lock if self.path is None else nullcontext():
            conn = self._connect()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise _error(f"cannot {what} in the ledger {self}", exc) from None

    def _writes(self, what: str) -> bool:
        """Whether a write may go ahead; on a read-only ledger, warn once that new answers
        are not kept."""
        if self._closed:
            raise _error("the ledger is closed")
        if self.path is not None:
            self._check_file()
        if not self.read_only:
            return True
        if not self._warned_read_only:
            self._warned_read_only = True
            _warn(
                f"the ledger {self} is read-only here: its answers are reused, but new answers "
                f"(and runs) are not kept ({what} skipped)"
            )
        return False

    def close(self) -> None:
        """Close every connection this object opened (in this process, on every thread)."""
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
            shared, self._shared = self._shared, None
        if os.getpid() != self._pid:
            return
        every = [c.db for c in conns if c.pid == self._pid] + ([shared] if shared else [])
        for db in every:
            try:
                db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only SQL query (for this package and its tests)."""
        with self._db("read") as db:
            return db.execute(sql, tuple(params)).fetchall()

    def _has(self, table: str, column: str) -> bool:
        return column in self._columns.get(table, frozenset())

    def _select(self, table: str, names: Sequence[str], prefix: str = "") -> str:
        """A select list of ``names``; columns an older read-only ledger lacks read NULL."""
        return ", ".join(f"{prefix}{n}" if self._has(table, n) else f"NULL AS {n}" for n in names)

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
            raise _error(f"cannot clear the ledger {self}: it is read-only here")
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
    from dataclasses import replace

    return replace(run, committed=totals)


def _dumps(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
