"""Claims: "this key is being asked". A run claims a key before it sends the request (owner,
expiry); others finding a live claim wait for the answer instead of paying for it again. A
claim whose owner died expires and can be taken over. SQL on one connection, in one
``BEGIN IMMEDIATE`` transaction each (SQLite serialises writers: of two contenders exactly
one gets a key)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ._records import ClaimResult

__all__ = ["claim", "live_claims", "release", "renew"]

_BATCH = 500


def _batches(keys: Sequence[str]) -> list[Sequence[str]]:
    return [keys[i : i + _BATCH] for i in range(0, len(keys), _BATCH)]


def claim(
    db: sqlite3.Connection, keys: Sequence[str], owner: str, ttl: float, now: float
) -> ClaimResult:
    granted: set[str] = set()
    held: dict[str, str] = {}
    db.execute("BEGIN IMMEDIATE")
    try:
        for key in keys:
            db.execute("DELETE FROM claims WHERE key = ? AND expires <= ?", (key, now))
            db.execute(
                "INSERT INTO claims (key, owner, expires) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires "
                "WHERE claims.owner = excluded.owner",
                (key, owner, now + ttl),
            )
        for batch in _batches(keys):
            marks = ",".join("?" * len(batch))
            for key, holder in db.execute(
                f"SELECT key, owner FROM claims WHERE key IN ({marks})", tuple(batch)
            ):
                if holder == owner:
                    granted.add(str(key))
                else:
                    held[str(key)] = str(holder)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return ClaimResult(frozenset(granted), held)


def renew(db: sqlite3.Connection, keys: Sequence[str], owner: str, ttl: float, now: float) -> int:
    count = 0
    for batch in _batches(keys):
        marks = ",".join("?" * len(batch))
        count += db.execute(
            f"UPDATE claims SET expires = ? WHERE owner = ? AND key IN ({marks})",
            (now + ttl, owner, *batch),
        ).rowcount
    return count


def release(db: sqlite3.Connection, keys: Sequence[str], owner: str) -> None:
    for batch in _batches(keys):
        marks = ",".join("?" * len(batch))
        db.execute(f"DELETE FROM claims WHERE owner = ? AND key IN ({marks})", (owner, *batch))


def live_claims(db: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, str]:
    """The keys among ``keys`` with a claim that has not expired, and their owners."""
    found: dict[str, str] = {}
    for batch in _batches(keys):
        marks = ",".join("?" * len(batch))
        for key, holder in db.execute(
            f"SELECT key, owner FROM claims WHERE expires > ? AND key IN ({marks})",
            (now, *batch),
        ):
            found[str(key)] = str(holder)
    return found
