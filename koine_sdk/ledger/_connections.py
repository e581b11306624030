"""The ledger's connections: one SQLite file in WAL mode, one connection per thread (and
process); the file created private, triggers and views dropped, the format migrated, a
read-only file opened ``mode=ro``, a deleted or replaced file noticed."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
import warnings
from collections.abc import Generator, Iterable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Self

from ..errors import KoineError
from . import _files, _schema
from ._location import MEMORY

__all__ = ["Connections", "LedgerWarning", "ledger_error", "warn"]

_WARNED_READABLE: set[str] = set()


class LedgerWarning(UserWarning):
    """The ledger file could not be used as asked (answers kept in this process only, a
    read-only ledger, a ledger readable by others, triggers or views dropped)."""


def ledger_error(message: str, exc: BaseException | None = None) -> KoineError:
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return KoineError(message + detail, "LEDGER_ERROR")


def warn(message: str) -> None:
    warnings.warn(message, LedgerWarning, stacklevel=4)


class _Conn:
    """A connection and the file generation it was opened on."""

    __slots__ = ("db", "generation", "pid")

    def __init__(self, db: sqlite3.Connection, generation: int) -> None:
        self.db, self.generation, self.pid = db, generation, os.getpid()


class Connections:
    """The ledger's connections: one per thread (and process), to the file that is there
    now, closed together. :class:`Ledger` adds the typed reads and writes."""

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
                raise ledger_error(
                    f"cannot create the ledger's folder {self.path.parent}", exc
                ) from None
            existed = self.path.exists()
            self.read_only = not _files.writable(self.path)
            self._connect()  # open now: a bad file fails here, before any request is sent
            where = str(self.path.resolve())
            if existed and _files.readable_by_others(self.path) and where not in _WARNED_READABLE:
                _WARNED_READABLE.add(where)
                warn(
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
                new = self.path is not None and not self.path.exists()
                with _files.private_umask() if self.path is not None else nullcontext():
                    conn = sqlite3.connect(
                        where, timeout=self.timeout, isolation_level=None, check_same_thread=False
                    )
                    self._setup(conn)
                if new and self.path is not None:  # (an existing one keeps its modes: warned)
                    _files.private_files(self.path)
        except sqlite3.Error as exc:
            raise ledger_error(
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
        warn(f"the ledger {self} held code, not data ({names}): dropped")

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise ledger_error("the ledger is closed")
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
                # close the old file's connections now (the last one to close checkpoints its
                # WAL into the old file, not into the one that is there now)
                stale, self._conns = self._conns, []
                for old in stale:
                    if old.pid == os.getpid():
                        try:
                            old.db.close()
                        except sqlite3.Error:
                            pass

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
                raise ledger_error(f"cannot {what} in the ledger {self}", exc) from None

    def _writes(self, what: str) -> bool:
        """Whether a write may go ahead; on a read-only ledger, warn once that new answers
        are not kept."""
        if self._closed:
            raise ledger_error("the ledger is closed")
        if self.path is not None:
            self._check_file()
        if not self.read_only:
            return True
        if not self._warned_read_only:
            self._warned_read_only = True
            warn(
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

    def __enter__(self) -> Self:
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
