"""Claims of one run: before a request is sent, its key is claimed in the ledger, so that another
run (a thread, a process, a Dask partition) asking the same thing at the same time waits for this
answer instead of paying for it again, and this run waits for theirs.

A claim has an owner and an expiry, renewed while the run is alive; the claim of a run that died
(``kill -9``, a lost Dask worker) expires and is taken over. A ledger that cannot hold claims
(read-only, broken mid-run) never stops the run: every key is then simply asked.

The SQL is the ledger's (:meth:`koine_sdk.ledger.Ledger.claim` and its siblings); this module
decides what is claimed when, and which rows wait.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from koine_sdk import KoineError
from koine_sdk.ledger import Ledger, LedgerRecord

from ._outcomes import RunFields
from ._state import FROM_LEDGER, Unit

__all__ = ["CLAIM_TTL", "ClaimsOfRun", "SharedRun", "Taken", "claim_ttl"]

CLAIM_TTL = 30.0
"""Seconds a claim lives unless renewed (a third of it between renewals): the longest another
run waits for the answers of a run that died before it takes them over."""

POLL = 0.2
"""Seconds between two looks at the keys this run waits for."""

SHARED = True
"""Whether runs claim their keys (the benchmark turns it off to measure what claims cost)."""


def claim_ttl() -> float:
    """:data:`CLAIM_TTL`, or ``$KOINE_CLAIM_TTL`` (seconds, > 0) when set."""
    raw = os.environ.get("KOINE_CLAIM_TTL", "").strip()
    try:
        value = float(raw) if raw else CLAIM_TTL
    except ValueError:
        return CLAIM_TTL
    return value if value > 0 else CLAIM_TTL


@dataclass(slots=True)
class Taken:
    """What one look at the ledger decided: units this run now owns and must send, and
    units another run answered meanwhile (with their records)."""

    send: list[Unit] = field(default_factory=lambda: list[Unit]())
    answered: list[tuple[Unit, LedgerRecord]] = field(
        default_factory=lambda: list[tuple[Unit, LedgerRecord]]()
    )


class ClaimsOfRun:
    """The keys one run holds, those it waits for, and their upkeep."""

    def __init__(self, *, ttl: float | None = None, enabled: bool = True) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.ttl = claim_ttl() if ttl is None else ttl
        self.enabled = enabled and SHARED
        self.waiting: dict[str, Unit] = {}  # held by another run: wait for its answer
        self._mine: set[str] = set()  # claimed and not yet released
        self._done: list[str] = []  # finished here: release at the next upkeep
        self._renewed = time.monotonic()
        self._looked = 0.0
        # the ledger the claims were made in: renewed and released there even when the run
        # goes on with its in-memory stand-in after a ledger error
        self._book: Ledger | None = None

    def __repr__(self) -> str:
        return f"ClaimsOfRun(mine={len(self._mine)}, waiting={len(self.waiting)})"

    # -- claiming ---------------------------------------------------------------------------

    def take(self, ledger: Ledger, units: Sequence[Unit]) -> Taken:
        """Claim the keys of ``units`` (in one transaction). Granted keys whose answer was
        recorded meanwhile are answered; keys held by another run wait (see :meth:`look`)."""
        for unit in units:
            unit.claimed = True
        if not units:
            return Taken()
        if not self.enabled:
            return Taken(send=list(units))
        keys = [u.key for u in units]
        if self._book is None:
            self._book = ledger
        ledger = self._book
        try:
            result = ledger.claim(keys, self.owner, self.ttl)
            granted = [u for u in units if u.key in result.granted]
            # an answer recorded between the run's first lookup and this claim
            found = _answers(ledger, granted)
        except KoineError:
            self.enabled = False  # a ledger that cannot hold claims: ask for every key
            return Taken(send=list(units))
        taken = Taken()
        self._mine.update(result.granted)
        for unit in units:
            record = found.get(unit.key)
            if unit.key not in result.granted:
                self.waiting[unit.key] = unit
            elif record is not None:
                taken.answered.append((unit, record))
                self._done.append(unit.key)
            else:
                taken.send.append(unit)
        return taken

    def finished(self, key: str) -> None:
        """This run has finished asking for ``key`` (answered, or given up)."""
        if key in self._mine:
            self._done.append(key)

    # -- upkeep -----------------------------------------------------------------------------

    def due(self, now: float) -> bool:
        """Whether :meth:`look` has something to do at ``now`` (monotonic)."""
        if not self.enabled:
            return False
        return (bool(self.waiting) and now - self._looked >= POLL) or (
            now - self._renewed >= self.ttl / 3
        )

    def look(self, ledger: Ledger) -> Taken:
        """Release what finished, renew what is held, and look at the keys this run waits
        for: answered ones are returned with their records; keys whose claim is gone (its
        owner finished without an answer, or died) are claimed and returned to send."""
        now = time.monotonic()
        self._looked = now
        ledger = self._book or ledger
        try:
            self._release_done(ledger)
            if now - self._renewed >= self.ttl / 3:
                if self._mine:
                    ledger.renew(self._mine, self.owner, self.ttl)
                self._renewed = now
            if not self.waiting:
                return Taken()
            keys = list(self.waiting)
            found = _answers(ledger, list(self.waiting.values()))
            live = ledger.held(k for k in keys if k not in found)
        except KoineError:
            self.enabled = False
            units, self.waiting = list(self.waiting.values()), {}
            return Taken(send=units)
        taken = Taken()
        for key, record in found.items():
            taken.answered.append((self.waiting.pop(key), record))
        free = [self.waiting.pop(k) for k in keys if k in self.waiting and k not in live]
        if free:  # the owner finished without an answer, or died: this run asks
            more = self.take(ledger, free)
            taken.send.extend(more.send)
            taken.answered.extend(more.answered)
        return taken

    def release(self, ledger: Ledger) -> None:
        """Give every claim of this run back (its end, whatever the reason)."""
        if not self.enabled:
            return
        self._done.extend(self._mine)
        try:
            self._release_done(self._book or ledger)
        except KoineError:
            pass

    def _release_done(self, ledger: Ledger) -> None:
        if not self._done:
            return
        done, self._done = set(self._done), []
        self._mine -= done
        ledger.release(done, self.owner)


def _answers(ledger: Ledger, units: Sequence[Unit]) -> dict[str, LedgerRecord]:
    """The successful records of ``units``, by each unit's key: an answer under any model of
    the run counts (another replica may have answered it)."""
    if not units:
        return {}
    found = ledger.lookup([k for u in units for k in (u.key, *u.others)])
    out: dict[str, LedgerRecord] = {}
    for unit in units:
        for key in (unit.key, *unit.others):
            record = found.get(key)
            if record is not None and record.ok:
                out[unit.key] = record
                break
    return out


class SharedRun(RunFields):
    """The claims of a run (a mixin of :class:`._run.Run`): keys claimed just ahead of sending,
    rows another run answered meanwhile filled from the ledger, and the upkeep task."""

    _claims: ClaimsOfRun

    def _claim_ahead(self) -> None:
        """Claim the keys of the next units in one ledger transaction (twice what the gateways
        take at once): those another run is asking leave the queue to wait for its answer."""
        live = [r for r in self._replicas if not r.dead] or self._replicas
        ahead = max(16, 2 * sum(max(1, r.limit) for r in live))
        popped: list[Unit] = []
        while self._queue and len(popped) < ahead:
            popped.append(self._queue.popleft())
        fresh = [u for u in popped if not u.claimed]
        taken = self._claims.take(self._ledger, fresh)
        gone = {id(u) for u in fresh} - {id(u) for u in taken.send}
        self._queue.extendleft(reversed([u for u in popped if id(u) not in gone]))
        self._answered_elsewhere(taken)

    def _answered_elsewhere(self, taken: Taken) -> None:
        """Rows whose answer another run recorded while this one waited (0 tokens here)."""
        for unit, record in taken.answered:
            if not self._fill_from(unit, record):
                self._queue.append(unit)  # the record does not fit this run: ask

    def _fill_from(self, unit: Unit, record: LedgerRecord) -> bool:
        values = [self._verb.replay(record) for _ in unit.positions]
        if any(v is None for v in values):
            return False
        for pos, value in zip(unit.positions, values, strict=True):
            self._rows.finish(
                pos, values=value, tokens=(0, 0), attempts=record.attempts, answer_from=FROM_LEDGER
            )
        self._ledger_usage.append((record.input_tokens, record.output_tokens))
        return True

    async def _keep_claims(self) -> None:
        """Renew this run's claims while it lives, release what finished, and take the rows
        another run was asking for when their answer lands (or when that run is gone)."""
        while True:
            await asyncio.sleep(POLL)
            if not self._claims.due(time.monotonic()):
                continue
            taken = self._claims.look(self._ledger)
            self._queue.extend(taken.send)
            self._answered_elsewhere(taken)
            if (taken.send or taken.answered) and self._wake is not None:
                self._wake.set()
