"""The ledger's tables and their numbered migrations.

A ledger's format is SQLite's ``user_version`` (3.0.0a1 wrote ``meta.schema_version = 1`` and
left ``user_version`` at 0: both are read). Opening a ledger applies the missing steps of
:data:`MIGRATIONS` in one transaction, in order, each in its own function; a step never
drops an answer, so an upgraded ledger keeps serving what was paid for. A ledger of a newer
format than :data:`SCHEMA_VERSION` is refused; a read-only one is read as it is (the readers
ask :func:`columns` which columns exist).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "columns", "format_of", "migrate"]

_OBJECT_ENDPOINTS = "('/generate-object', '/stream-object')"


def _v1_tables(db: sqlite3.Connection) -> None:
    """The format of 3.0.0a1 (a new file starts here and takes every later step)."""
    for statement in (
        "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS blobs (hash TEXT PRIMARY KEY, content TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, "
        "status TEXT NOT NULL, started REAL NOT NULL, ended REAL, rows INTEGER, params TEXT, "
        "stats TEXT, host TEXT, pid INTEGER)",
        "CREATE TABLE IF NOT EXISTS requests (id INTEGER PRIMARY KEY, key TEXT NOT NULL, "
        "run_id TEXT, endpoint TEXT NOT NULL, prompt TEXT NOT NULL, system_hash TEXT, "
        "schema_hash TEXT, model TEXT, allowed_tools TEXT, session_in TEXT, "
        "status TEXT NOT NULL, error_code TEXT, error_message TEXT, answer TEXT, raw_text TEXT, "
        "input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0, "
        "session_id TEXT, attempts INTEGER NOT NULL DEFAULT 1, started REAL, finished REAL)",
        "CREATE INDEX IF NOT EXISTS requests_by_key ON requests (key)",
        "CREATE INDEX IF NOT EXISTS requests_by_run ON requests (run_id)",
    ):
        db.execute(statement)


def _v2_received_group_model_claims(db: sqlite3.Connection) -> None:
    """The raw answer as received (re-validated on every reuse), the Dask group as a column,
    the model that answered, and claims (a key being asked)."""
    db.execute("ALTER TABLE requests ADD COLUMN received TEXT")
    db.execute("ALTER TABLE requests ADD COLUMN answered_by TEXT")
    db.execute("ALTER TABLE runs ADD COLUMN dask_group TEXT")
    # 3.0.0a1's extract stored the validated object in ``answer`` and the gateway's JSON text
    # in ``raw_text``: the JSON text is what was received.
    db.execute(
        "UPDATE requests SET received = raw_text WHERE status = 'ok' AND raw_text IS NOT NULL "
        f"AND endpoint IN {_OBJECT_ENDPOINTS} AND json_valid(raw_text)"
    )
    db.execute(
        "UPDATE runs SET dask_group = json_extract(params, '$.dask.group') "
        "WHERE params IS NOT NULL AND json_valid(params) "
        "AND json_type(params, '$.dask.group') = 'text'"
    )
    db.execute("CREATE INDEX IF NOT EXISTS runs_by_group ON runs (dask_group)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT NOT NULL, "
        "expires REAL NOT NULL)"
    )


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _v1_tables,
    _v2_received_group_model_claims,
)
"""Step ``n`` (1-based) takes a ledger from format ``n - 1`` to ``n``."""

SCHEMA_VERSION = len(MIGRATIONS)


def format_of(db: sqlite3.Connection) -> int:
    """The ledger's format: the larger of ``user_version`` and ``meta.schema_version`` (which
    3.0.0a1 wrote, and read to refuse a newer ledger: both are kept)."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    has_meta = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if has_meta is None:
        return version
    row = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    if row is None:
        return max(version, 1)
    try:
        return max(version, int(row[0]))
    except (TypeError, ValueError):
        raise sqlite3.DatabaseError(f"its format is not a number ({row[0]!r})") from None


def _newer(version: int) -> sqlite3.DatabaseError:
    return sqlite3.DatabaseError(f"it was written by a newer koine-sdk (ledger format {version})")


def migrate(db: sqlite3.Connection) -> int:
    """Bring the ledger to :data:`SCHEMA_VERSION` in one transaction (nothing when it is
    there); returns the format it had. Raises ``sqlite3.DatabaseError`` for a newer one."""
    before = format_of(db)
    if before > SCHEMA_VERSION:
        raise _newer(before)
    if before == SCHEMA_VERSION:
        return before
    db.execute("BEGIN IMMEDIATE")
    try:
        now = format_of(db)  # another connection may have migrated meanwhile
        if now > SCHEMA_VERSION:
            raise _newer(now)
        for step in MIGRATIONS[now:]:
            step(db)
        db.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return before


def check_readable(db: sqlite3.Connection) -> int:
    """A ledger opened read-only is not migrated: its format must be known."""
    version = format_of(db)
    if version > SCHEMA_VERSION:
        raise _newer(version)
    return version


def columns(db: sqlite3.Connection, table: str) -> frozenset[str]:
    """The columns ``table`` has (an older, read-only ledger lacks the newer ones)."""
    return frozenset(str(r[1]) for r in db.execute(f"PRAGMA table_info({table})"))
