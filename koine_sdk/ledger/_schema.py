"""The ledger's SQLite schema and its numbered migrations (no I/O of its own: the store runs
them on its connections)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, cast

__all__ = [
    "LEDGER_TABLES",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TABLES",
    "check_read_only",
    "drop_code",
]

LEDGER_TABLES = frozenset({"meta", "blobs", "runs", "requests"})

SCHEMA_VERSION = 3
"""The ledger's format. Each step of :data:`MIGRATIONS` takes a file from the version before
to its own; a file newer than this is refused (it was written by a newer koine-sdk)."""
TABLES = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, content TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    rows INTEGER,
    params TEXT,
    stats TEXT,
    host TEXT,
    pid INTEGER,
    run_group TEXT
);
CREATE INDEX IF NOT EXISTS runs_by_group ON runs (run_group);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    run_id TEXT,
    endpoint TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system_hash TEXT,
    schema_hash TEXT,
    model TEXT,
    allowed_tools TEXT,
    session_in TEXT,
    status TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    answer TEXT,
    raw_text TEXT,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    session_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS requests_by_key ON requests (key);
CREATE INDEX IF NOT EXISTS requests_by_run ON requests (run_id);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


def _migrate_to_2(db: sqlite3.Connection) -> None:
    """3.0.0a1 -> 2: runs get a ``run_group`` column (the Dask group of a partition's run, which
    was only inside the params JSON), filled from the params of the runs already there."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    if "run_group" not in columns:
        db.execute("ALTER TABLE runs ADD COLUMN run_group TEXT")
    for run_id, params in db.execute("SELECT run_id, params FROM runs").fetchall():
        group = _group_in(params)
        if group is not None:
            db.execute("UPDATE runs SET run_group = ? WHERE run_id = ?", (group, run_id))
    db.execute("CREATE INDEX IF NOT EXISTS runs_by_group ON runs (run_group)")


def _group_in(params: object) -> str | None:
    try:
        loaded: Any = json.loads(params) if isinstance(params, str) else None
    except ValueError:
        return None
    if not isinstance(loaded, dict):
        return None
    dask: Any = cast(dict[str, Any], loaded).get("dask")
    if not isinstance(dask, dict):
        return None
    group: Any = cast(dict[str, Any], dask).get("group")
    return group if isinstance(group, str) else None


def _migrate_to_3(db: sqlite3.Connection) -> None:
    """2 -> 3: claims, the keys being asked (owner, expiry: see ``_claims``)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
        "expires REAL NOT NULL)"
    )


MIGRATIONS: tuple[tuple[int, Callable[[sqlite3.Connection], None]], ...] = (
    (2, _migrate_to_2),
    (3, _migrate_to_3),
)
"""(version, step): the numbered upgrades, applied in order, each in one transaction. An
upgrade keeps every answer (it never makes anyone pay again)."""


def drop_code(conn: sqlite3.Connection) -> str:
    """A ledger is data: it never holds triggers or views. A file from elsewhere that does (a
    trigger can rewrite later answers, a view can stand in for a table) has them dropped; the
    names dropped are returned ("" when there were none). ``DatabaseError`` when they cannot be
    dropped (the file is then refused)."""
    found = conn.execute(
        "SELECT type, name FROM sqlite_master WHERE type IN ('trigger', 'view')"
    ).fetchall()
    if not found:
        return ""
    names = ", ".join(f"{kind} {name!r}" for kind, name in found)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for kind, name in found:
            quoted = '"' + str(name).replace('"', '""') + '"'
            conn.execute(f"DROP {'TRIGGER' if kind == 'trigger' else 'VIEW'} IF EXISTS {quoted}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise sqlite3.DatabaseError(
            f"it holds code ({names}), which a ledger never does, and it could not be "
            f"dropped ({exc})"
        ) from None
    return names


def check_read_only(conn: sqlite3.Connection) -> None:
    """A file opened read-only is used only if it is a ledger of a known format without code
    (nothing can be dropped or upgraded in it): else ``DatabaseError``."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not have >= LEDGER_TABLES:
        raise sqlite3.DatabaseError("not a ledger (its tables are missing)")
    code = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type IN ('trigger', 'view')"
    ).fetchone()[0]
    if code:
        raise sqlite3.DatabaseError("it holds triggers or views, which cannot be dropped")
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is not None and int(row[0]) > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(f"it was written by a newer koine-sdk (format {row[0]})")
