"""The ledger's storage: one SQLite file in WAL mode, one connection per thread (and process),
one row written and committed as each request finishes."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..errors import KoineError
from ._claims import Claims
from ._files import create_private, file_identity, writable
from ._key import RequestShape
from ._location import MEMORY
from ._records import RECORD_COLUMNS, GroupRun, LedgerRecord, storable, valid_row
from ._schema import (
    LEDGER_TABLES,
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    check_read_only,
    drop_code,
)
from ._warnings import LedgerWarning

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GroupRun", "Ledger", "LedgerRecord"]

_warned_read_only: set[str] = set()  # one warning per file and process
_LOOKUP_BATCH = 500  # keys per SELECT (SQLite allows 32,766 parameters; small batches stay fast)


def _error(message: str, exc: BaseException | None = None) -> KoineError:
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return KoineError(message + detail, "LEDGER_ERROR")


class Ledger(Claims):
    """A durable record of requests and their answers: cache, checkpoint and log at once.

    ``Ledger(path)`` opens (or creates) the SQLite file at ``path``; ``Ledger(":memory:")``
    keeps one in this process only. Safe to share between threads; several processes may
    write one file at once (SQLite's WAL mode on a local disk; not on a network filesystem).
    Prompts and answers are stored in plain text.

    Raises ``KoineError("LEDGER_ERROR")`` when the file cannot be opened or written (a
    directory that cannot be created, a file that is not a ledger, a lock held too long).
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 10.0) -> None:
        self.in_memory = str(path) == MEMORY
        self.path: Path | None = None if self.in_memory else Path(path).expanduser()
        self.timeout = timeout
        self._local = threading.local()
        self._lock = threading.RLock()
        self._connections: list[sqlite3.Connection] = []
        self._shared: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False
        self.read_only = False  # set when the file can be read but not written (see _open)
        self._generation = 0  # bumped when the file was replaced: thread connections reopen
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file in use
        if self.path is not None:
            create_private(self.path)
        self._connect()  # open now: a bad file fails here, before any request is sent

    def __repr__(self) -> str:
        return f"Ledger({MEMORY if self.path is None else str(self.path)!r})"

    # -- connections --------------------------------------------------------------------------

    def _connect_to(self, where: str, *, uri: bool = False) -> sqlite3.Connection:
        try:
            return sqlite3.connect(
                where,
                timeout=self.timeout,
                isolation_level=None,  # autocommit: each write is its own committed transaction
                # Each thread uses its own connection (thread-local); close() may still close them
                # all from one thread, which needs this off.
                check_same_thread=False,
                uri=uri,
            )
        except sqlite3.Error as exc:
            raise _error(f"cannot open the ledger {where}", exc) from None

    def _open_read_only(self) -> sqlite3.Connection:
        """A ledger this process can read but not write (a shared answers file, a folder of
        someone else's): answers are reused and replayed, new ones are not kept (one warning)."""
        assert self.path is not None
        base = self.path.resolve().as_uri()
        last: BaseException | None = None
        # mode=ro needs the -shm file (or a writable folder); immutable=1 reads the file as is.
        for query in ("mode=ro", "immutable=1"):
            conn = self._connect_to(f"{base}?{query}", uri=True)
            try:
                conn.execute("PRAGMA trusted_schema = OFF")
                check_read_only(conn)
            except (sqlite3.Error, ValueError) as exc:
                conn.close()
                last = exc
                continue
            if not self.read_only:
                self.read_only = True
                if str(self.path) in _warned_read_only:
                    return conn
                _warned_read_only.add(str(self.path))
                warnings.warn(
                    f"The ledger {self.path} is read-only here: its answers are reused, but new "
                    "answers will not be kept (they are paid again next time).",
                    LedgerWarning,
                    stacklevel=5,
                )
            return conn
        raise _error(f"the ledger {self.path} cannot be read", last)

    def _open(self) -> sqlite3.Connection:
        where = MEMORY if self.path is None else str(self.path)
        if self.path is not None and (self.read_only or not writable(self.path)):
            return self._open_read_only()
        conn = self._connect_to(where)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            # A ledger may come from elsewhere: SQL functions named in its schema never run.
            conn.execute("PRAGMA trusted_schema = OFF")
            self._prepare(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            if self.path is not None and "readonly" in str(exc).lower().replace("-", ""):
                return self._open_read_only()
            raise _error(
                f"the ledger {where} cannot be used (corrupt, locked, or not a ledger; move it "
                "away, or choose another file with KOINE_LEDGER or ledger=)",
                exc,
            ) from None
        except (sqlite3.Error, ValueError) as exc:
            conn.close()
            raise _error(
                f"the ledger {where} cannot be used (corrupt, locked, or not a ledger; move it "
                "away, or choose another file with KOINE_LEDGER or ledger=)",
                exc,
            ) from None
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """WAL mode, the tables, the format check. Connections opening a new file at the same
        moment can be refused with "database is locked" without SQLite's busy handler being
        asked (switching to WAL, the first schema write): retried here until ``timeout``."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                self._prepare_once(conn)
                return
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if ("locked" not in message and "busy" not in message) or (
                    time.monotonic() + delay > deadline
                ):
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _prepare_once(self, conn: sqlite3.Connection) -> None:
        dropped = drop_code(conn)
        if dropped:
            warnings.warn(
                f"The ledger {self.path} held {dropped}; a ledger never holds code, so they "
                "were dropped. Trust a ledger from elsewhere as you trust the notebook it came "
                "with.",
                LedgerWarning,
                stacklevel=6,
            )
        if self.path is not None:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is needed")
            # WAL + NORMAL: a commit survives a crash or kill -9 of this process (it may be
            # lost only with the machine, on power loss), at a fraction of FULL's cost.
            conn.execute("PRAGMA synchronous = NORMAL")
        have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not have >= LEDGER_TABLES:
            conn.executescript(TABLES)
        row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
        if row is None:
            conn.execute(
                "INSERT OR IGNORE INTO meta (name, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            return
        version = int(row[0])
        if version > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"it was written by a newer koine-sdk (ledger format {row[0]})"
            )
        for target, step in MIGRATIONS:
            if version < target:
                self._upgrade(conn, target, step)
                version = target

    def _upgrade(
        self, conn: sqlite3.Connection, target: int, step: Callable[[sqlite3.Connection], None]
    ) -> None:
        """One numbered migration, in one transaction (another process may have done it
        first: the version is read again inside it)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            if int(now[0]) < target:
                step(conn)
                conn.execute(
                    "UPDATE meta SET value = ? WHERE name = 'schema_version'", (str(target),)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

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
            self._connections = []
        self._follow_file()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "generation", -1) != self._generation:
            conn = self._open()
            self._local.conn = conn
            self._local.generation = self._generation
            with self._lock:
                self._connections.append(conn)
            if self._identity is None:
                self._identity = file_identity(self.path)
        return conn

    def _follow_file(self) -> None:
        """The file on disk is the truth: when the ledger was deleted or replaced since it was
        opened (``rm`` to forget, a shipped file copied over it), every connection to the old
        file is closed and the next use opens (or creates) the one there now."""
        if self._identity is None or self.path is None:
            return
        now = file_identity(self.path)
        if now == self._identity:
            return
        with self._lock:
            if file_identity(self.path) == self._identity:
                return
            old, self._connections = self._connections, []
            self._generation += 1
            self._identity = None
        for conn in old:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        assert self.path is not None
        create_private(self.path)

    @contextmanager
    def _db(self, what: str) -> Generator[sqlite3.Connection]:
        with self._lock if self.path is None else nullcontext():
            conn = self._connect()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise _error(f"cannot {what} in the ledger {self}", exc) from None

    def close(self) -> None:
        """Close every connection this object opened (in this process)."""
        with self._lock:
            self._closed = True
            conns, self._connections = self._connections, []
            if self._shared is not None:
                conns.append(self._shared)
                self._shared = None
        if os.getpid() != self._pid:
            return
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------------

    def start_run(
        self,
        kind: str,
        *,
        rows: int | None = None,
        params: Mapping[str, Any],
        group: str | None = None,
    ) -> str:
        """Record the start of a run (``kind``: ``"extract"``, ...; ``group``: the Dask group
        it is a partition of); returns its id."""
        run_id = uuid.uuid4().hex[:16]
        if self.read_only:
            return run_id  # nothing can be kept: the run goes on all the same
        with self._db("start a run") as db:
            db.execute(
                "INSERT INTO runs (run_id, kind, status, started, rows, params, host, pid, "
                "run_group) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    kind,
                    time.time(),
                    rows,
                    _dumps(params),
                    socket.gethostname(),
                    os.getpid(),
                    group,
                ),
            )
        return run_id

    def group_runs(self, group: str, kind: str = "extract") -> list[GroupRun]:
        """The runs of a Dask ``group`` (its partitions), oldest first."""
        with self._db("read the runs of a group") as db:
            found = db.execute(
                "SELECT run_id, status, started, ended, rows, params, stats FROM runs "
                "WHERE kind = ? AND run_group = ? ORDER BY started",
                (kind, group),
            ).fetchall()
        out: list[GroupRun] = []
        for run_id, status, started, ended, n, params, stats in found:
            try:
                loaded: Any = json.loads(params) if params else {}
                summary: Any = json.loads(stats) if stats else None
            except (TypeError, ValueError):
                continue  # a record that is not what a ledger writes: skipped
            out.append(GroupRun(run_id, status, started, ended, n, loaded, summary))
        return out

    def committed(self, run_id: str) -> tuple[int, int, int]:
        """(requests, input tokens, output tokens) a run has committed so far."""
        with self._db("count a run's requests") as db:
            count, tokens_in, tokens_out = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), "
                "COALESCE(SUM(output_tokens), 0) FROM requests WHERE run_id = ?",
                (run_id,),
            ).fetchone()
        return int(count), int(tokens_in), int(tokens_out)

    def finish_run(self, run_id: str, *, status: str, stats: Mapping[str, Any]) -> None:
        """Record how a run ended (``status``: ``"done"``, ``"interrupted"``, ``"failed"``...)."""
        if self.read_only:
            return
        with self._db("finish a run") as db:
            db.execute(
                "UPDATE runs SET status = ?, ended = ?, stats = ? WHERE run_id = ?",
                (status, time.time(), _dumps(stats), run_id),
            )

    # -- requests ---------------------------------------------------------------------------

    def _blob(self, db: sqlite3.Connection, digest: str | None, content: str | None) -> None:
        # Written with every record (an ignored insert when present): another process may have
        # cleared the ledger since this one last wrote the blob, so no memory of "already there".
        if digest is None or content is None:
            return
        db.execute(
            "INSERT OR IGNORE INTO blobs (hash, content) VALUES (?, ?)",
            (digest, storable(content)),
        )

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
        error_code: str | None = None,
        error_message: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        session_id: str | None = None,
        attempts: int = 1,
        started: float | None = None,
        finished: float | None = None,
        answered_by: str | None = None,
    ) -> None:
        """Write (and commit) one finished request. ``shape`` is the rest of its body
        (:meth:`RequestShape.of`); ``status`` is ``"ok"`` or ``"failed"``. ``answered_by`` is
        the model that answered when the request named none (a replica's default model):
        the ``model`` column, shown by ``history()``, then says it."""
        if status not in ("ok", "failed"):
            raise ValueError(f"status must be 'ok' or 'failed' (got {status!r})")
        if self.read_only:
            return  # warned once when opened: new answers are not kept
        # SQLite stores UTF-8, which cannot hold a lone surrogate: such text is stored with
        # U+FFFD in its place (the key, computed from the true text, still finds the answer),
        # so a paid answer is never lost to an encoding error.
        key = key if key is not None else shape.key(prompt)  # of the true text
        prompt = storable(prompt)
        answer, raw_text = storable(answer), storable(raw_text)
        error_message = storable(error_message)
        tools = json.dumps(list(shape.allowed_tools)) if shape.allowed_tools is not None else None
        with self._db("record a request") as db:
            self._blob(db, shape.schema_hash, shape.schema_json)
            self._blob(db, shape.system_hash, shape.system)
            db.execute(
                "INSERT INTO requests (key, run_id, endpoint, prompt, system_hash, schema_hash, "
                "model, allowed_tools, session_in, status, error_code, error_message, answer, "
                "raw_text, input_tokens, output_tokens, session_id, attempts, started, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    run_id,
                    shape.path,
                    prompt,
                    shape.system_hash,
                    shape.schema_hash,
                    shape.model if shape.model is not None else answered_by,
                    tools,
                    shape.session_id,
                    status,
                    error_code,
                    error_message,
                    answer,
                    raw_text,
                    input_tokens,
                    output_tokens,
                    session_id,
                    attempts,
                    started,
                    finished if finished is not None else time.time(),
                ),
            )

    def record_request(self, path: str, body: Mapping[str, Any], **outcome: Any) -> None:
        """:meth:`record` for one request given as its wire body (``prompt`` included)."""
        self.record(RequestShape.of(path, body), str(body["prompt"]), **outcome)

    def lookup(self, keys: Iterable[str]) -> dict[str, LedgerRecord]:
        """The best record of each key that has one: its latest success, else its latest
        failure."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, LedgerRecord] = {}
        with self._db("look up answers") as db:
            for start in range(0, len(wanted), _LOOKUP_BATCH):
                batch = wanted[start : start + _LOOKUP_BATCH]
                marks = ",".join("?" * len(batch))
                rows = db.execute(
                    f"SELECT {RECORD_COLUMNS} FROM requests WHERE key IN ({marks}) ORDER BY id",
                    batch,
                ).fetchall()
                for row in rows:
                    if not valid_row(row):
                        continue  # a bad record is a miss
                    rec = LedgerRecord(*row)
                    old = found.get(rec.key)
                    if old is None or rec.ok or not old.ok:
                        found[rec.key] = rec
        return found

    def nearest(
        self, prompt: str, endpoints: Sequence[str]
    ) -> tuple[str | None, str | None, str | None, str | None, str | None] | None:
        """The latest success recorded for ``prompt`` on one of ``endpoints``, as (model,
        session id sent, system hash, schema hash, allowed tools as JSON): what a near miss
        differs by. ``None`` when there is none (or the row does not have these types)."""
        marks = ",".join("?" * len(endpoints))
        with self._db("look up a prompt") as db:
            row = db.execute(
                "SELECT model, session_in, system_hash, schema_hash, allowed_tools FROM requests "
                f"WHERE prompt = ? AND status = 'ok' AND endpoint IN ({marks}) "
                "ORDER BY id DESC LIMIT 1",
                (prompt, *endpoints),
            ).fetchone()
        if row is None or not all(v is None or isinstance(v, str) for v in row):
            return None
        return cast("tuple[str | None, str | None, str | None, str | None, str | None]", row)

    def get(self, key: str) -> LedgerRecord | None:
        """The best record of one key (see :meth:`lookup`), or ``None``."""
        return self.lookup([key]).get(key)

    def clear(self) -> None:
        """Forget every request and run (the next calls pay again for every answer)."""
        with self._db("clear") as db:
            db.execute("DELETE FROM requests")
            db.execute("DELETE FROM runs")
            db.execute("DELETE FROM blobs")

    # -- reading ----------------------------------------------------------------------------

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a SQL query on the ledger's tables (private: the ledger owns its schema;
        callers use the typed reads)."""
        with self._db("read") as db:
            return db.execute(sql, tuple(params)).fetchall()

    def runs(self, *, limit: int | None = None) -> pd.DataFrame:
        """The runs, newest first, as a DataFrame (needs pandas)."""
        from ._frames import runs_frame

        return runs_frame(self._run_rows(limit))

    def rows(
        self, run_id: str | None = None, *, status: str | None = None, limit: int | None = None
    ) -> pd.DataFrame:
        """The recorded requests (all, or those of ``run_id``; ``status="ok"``/``"failed"``),
        oldest first, as a DataFrame: prompt, system, answer, status, error, tokens, attempts,
        timings (needs pandas)."""
        from ._frames import rows_frame

        return rows_frame(self._request_rows(run_id, status, limit))

    def _run_rows(self, limit: int | None) -> list[tuple[Any, ...]]:
        sql = (
            "SELECT run_id, kind, status, started, ended, rows, params, stats FROM runs "
            "ORDER BY started DESC" + (" LIMIT ?" if limit is not None else "")
        )
        return self._query(sql, [limit] if limit is not None else [])

    def _request_rows(
        self, run_id: str | None, status: str | None, limit: int | None
    ) -> list[tuple[Any, ...]]:
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
            "r.error_code, r.error_message, r.answer, r.input_tokens, r.output_tokens, "
            "r.attempts, r.session_id, r.started, r.finished, r.key FROM requests r "
            "LEFT JOIN blobs s ON s.hash = r.system_hash"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY r.id"
            + (" LIMIT ?" if limit is not None else "")
        )
        if limit is not None:
            params.append(limit)
        return self._query(sql, params)


def _dumps(value: Mapping[str, Any]) -> str:
    return storable(json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")))
