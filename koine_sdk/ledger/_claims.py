"""Claims: "this key is being asked". A run claims a key before it sends the request (owner,
expiry); others finding a live claim wait for the answer instead of paying for it again. A
claim whose owner died expires and can be taken over. SQL on one connection, in one
``BEGIN IMMEDIATE`` transaction each (SQLite serialises writers: of two contenders exactly
one gets a key)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from ._records import LedgerRecord

__all__ = ["ClaimResult", "Claims"]


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The answer to :meth:`Ledger.claim`: the keys now claimed by the caller, and the others
    with the owner holding each."""

    granted: frozenset[str]
    held: Mapping[str, str] = field(default_factory=lambda: {})

    @property
    def all_granted(self) -> bool:
        return not self.held


class Claims:
    """The claim methods of :class:`Ledger` (which gives the connection and the lookup)."""

    read_only: bool

    def _db(self, what: str) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def lookup(self, keys: Iterable[str]) -> dict[str, LedgerRecord]:
        raise NotImplementedError

    def claim(self, keys: Iterable[str], owner: str, ttl: float = 60.0) -> ClaimResult:
        """Claim ``keys`` for ``owner`` for ``ttl`` seconds before asking for them: the keys
        free (or whose claim expired, or already ``owner``'s: renewed) are granted, the
        others are held by another owner (wait for their answers: :meth:`wait_for`). A
        read-only ledger grants every key (nobody can share answers through it)."""
        wanted = list(dict.fromkeys(keys))
        if self.read_only:
            return ClaimResult(frozenset(wanted))
        with self._db("claim keys") as db:
            return _claim(db, wanted, owner, ttl, time.time())

    def renew(self, keys: Iterable[str], owner: str, ttl: float = 60.0) -> int:
        """Extend ``owner``'s claims on ``keys`` to ``ttl`` seconds from now (while the
        requests are alive); returns how many it still held."""
        if self.read_only:
            return 0
        with self._db("renew claims") as db:
            return _renew(db, list(keys), owner, ttl, time.time())

    def release(self, keys: Iterable[str], owner: str) -> None:
        """Drop ``owner``'s claims on ``keys`` (its answers are written, or it gave up)."""
        if self.read_only:
            return
        with self._db("release claims") as db:
            _release(db, list(keys), owner)

    def held(self, keys: Iterable[str]) -> dict[str, str]:
        """The keys among ``keys`` with a live claim (not expired), and the owner of each."""
        wanted = list(dict.fromkeys(keys))
        if self.read_only or not wanted:
            return {}
        with self._db("read claims") as db:
            return _live_claims(db, wanted, time.time())

    def wait_for(
        self, keys: Iterable[str], timeout: float, *, poll: float = 0.05
    ) -> dict[str, LedgerRecord]:
        """Wait until every key has a successful record or no live claim (its owner finished
        without an answer, released it, or died and its claim expired), at most ``timeout``
        seconds. Returns the successful records found (a key missing from it: claim it and
        ask for it)."""
        wanted = list(dict.fromkeys(keys))
        deadline = time.monotonic() + max(0.0, timeout)
        delay = poll
        while True:
            found = {k: r for k, r in self.lookup(wanted).items() if r.ok}
            rest = [k for k in wanted if k not in found]
            if not rest or self.read_only:
                return found
            with self._db("read claims") as db:
                live = _live_claims(db, rest, time.time())
            if not live or time.monotonic() >= deadline:
                return found
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 1.5, 0.5)


_BATCH = 500


def _batches(keys: Sequence[str]) -> list[Sequence[str]]:
    return [keys[i : i + _BATCH] for i in range(0, len(keys), _BATCH)]


def _claim(
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


def _renew(db: sqlite3.Connection, keys: Sequence[str], owner: str, ttl: float, now: float) -> int:
    count = 0
    for batch in _batches(keys):
        marks = ",".join("?" * len(batch))
        count += db.execute(
            f"UPDATE claims SET expires = ? WHERE owner = ? AND key IN ({marks})",
            (now + ttl, owner, *batch),
        ).rowcount
    return count


def _release(db: sqlite3.Connection, keys: Sequence[str], owner: str) -> None:
    for batch in _batches(keys):
        marks = ",".join("?" * len(batch))
        db.execute(f"DELETE FROM claims WHERE owner = ? AND key IN ({marks})", (owner, *batch))


def _live_claims(db: sqlite3.Connection, keys: Sequence[str], now: float) -> dict[str, str]:
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
