"""One extraction run: the scheduler that sends the queued requests to the gateways, writes each
finished request to the ledger, and fills the rows.

It runs on one event loop. ``execute`` returns the frame; it raises (after the frame is built
and kept in ``final``) on a fatal error, a projection above the budget, or an interrupt.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from koine_sdk import KoineError
from koine_sdk.ledger import Ledger, LedgerRecord, RequestShape

from ._claiming import POLL as CLAIMS_POLL
from ._claiming import ClaimsOfRun, Taken
from ._clients import KoineClient, call_on_home
from ._decide import describe, is_connection_trouble
from ._estimate import Estimate
from ._outcomes import LedgerFailure, end_sample, handle, record_end, run_error
from ._pending import Pending
from ._replica import Replica
from ._state import FROM_LEDGER, Rows, Unit
from ._stats import RunStats

if TYPE_CHECKING:
    import pandas as pd

    from koine_jupyter.views.progress import ProgressSnapshot, ProgressView

    from ._options import Options
    from ._verbs import Verb

__all__ = ["Gate", "Limits", "Run"]

HEALTH_TIMEOUT = 5.0
CANCEL_GRACE = 5.0  # seconds an interrupted run waits for its requests to close
POLL = 0.1


Gate = Callable[[Replica], AbstractAsyncContextManager[object]]
"""Waits for a lease on the gateway's slots and holds it while one request runs (Dask)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_retries: int
    max_retry_after: float
    max_rows: int | None
    max_tokens: int | None


class Run:
    """The state of one extraction and the scheduler that drives it."""

    def __init__(
        self,
        *,
        rows: Rows,
        units: Sequence[Unit],
        verb: Verb,
        options: Options,
        shape: RequestShape,
        replicas: list[Replica],
        own_clients: list[KoineClient],
        concurrency: int | None,
        limits: Limits,
        ledger: Ledger,
        run_id: str | None,
        sample: int = 0,
        stop_after_sample: bool = False,
        ledger_usage: Sequence[tuple[int, int]] = (),
    ) -> None:
        self.rows = rows
        self.verb = verb
        self._options = options
        self.shape = shape
        self.replicas = replicas
        self._own_clients = own_clients
        self._concurrency = concurrency
        self.limits = limits
        self.ledger = ledger
        self.run_id = run_id
        self._requests = 0
        self.throttled = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.budget_hit: str | None = None
        self._interrupted = False
        self.fatal: KoineError | None = None
        self.stop_error: KoineError | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self.queue: collections.deque[Unit] = collections.deque()
        self.later: list[Unit] = []
        self._inflight: dict[asyncio.Task[Any], tuple[Unit, Replica]] = {}
        self._crash: BaseException | None = None
        self.wake: asyncio.Event | None = None
        self.pending = Pending()  # rows in a back-off, gateways' health checks
        self.view: ProgressView | None = None
        self.final: pd.DataFrame | None = None
        self.finished_event = threading.Event()
        self.ledger_warned = False
        self.ledger_failure: LedgerFailure | None = None
        self.estimate: Estimate | None = None
        self.stop_after_sample = stop_after_sample
        self.announce: Callable[[str], None] | None = None
        self.gate: Gate | None = None
        self.sample_usage: list[tuple[int, int]] = []
        self.sample_seconds: list[float] = []
        self.ledger_usage = list(ledger_usage)
        # cache=False asks for every row again: nothing to share with other runs
        self._claims = ClaimsOfRun(enabled=options.cache)
        if sample > 0 and units:
            step = len(units) / min(sample, len(units))
            picked = {int(i * step) for i in range(min(sample, len(units)))}
            self.queue.extend(u for i, u in enumerate(units) if i in picked)
            self.later = [u for i, u in enumerate(units) if i not in picked]
            self.sampling = True
        else:
            self.queue.extend(units)
            self.sampling = False

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        from koine_jupyter.views.progress import ProgressSnapshot

        live = [r for r in self.replicas if not r.dead]
        now = time.monotonic()
        note: str | None = None
        if self.budget_hit:
            note = "budget reached"
        elif self._claims.waiting:
            note = f"{len(self._claims.waiting)} asked by another run: waiting for its answers"
        elif self.sampling:
            note = "estimating from a sample"
        elif any(r.cool_until > now and r.cooling_for_429 for r in live):
            note = "gateway busy (429): backing off"
        elif any(r.in_outage for r in live):
            note = "gateway unreachable: retrying"
        rows = self.rows
        return ProgressSnapshot(
            total=rows.n,
            done=rows.done,
            failed=rows.failed,
            cached=rows.from_ledger,
            in_flight=len(self._inflight),
            requested=rows.requested,
            elapsed=(self._ended or now) - self._started,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            concurrency=sum(max(1, int(min(r.window, r.ceiling))) for r in live),
            limit=sum(r.limit for r in live) or sum(r.limit for r in self.replicas),
            replicas_alive=len(live),
            replicas=len(self.replicas),
            note=note,
        )

    def stats(self) -> RunStats:
        rows = self.rows
        return RunStats(
            rows=rows.n,
            succeeded=rows.done,
            failed=rows.failed,
            ledger_hits=rows.from_ledger,
            duplicates=rows.duplicates,
            requests=self._requests,
            throttled=self.throttled,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            elapsed=round((self._ended or time.monotonic()) - self._started, 3),
            interrupted=self._interrupted,
            budget_exceeded=self.budget_hit,
            estimate=self.estimate.as_dict() if self.estimate else None,
            run_id=self.run_id,
            ledger=str(self.ledger.path) if self.ledger.path else ":memory:",
            verb=self.verb.name,
            gateways=tuple(r.stats() for r in self.replicas),
            error=run_error(self),
        )

    def frame(self) -> pd.DataFrame:
        df = self.rows.frame()
        df.attrs["koine"] = self.stats().as_dict()
        return df

    # -- the ledger -------------------------------------------------------------------------

    # -- the scheduler ----------------------------------------------------------------------

    async def execute(self) -> pd.DataFrame:
        """Run every queued row; return the frame (kept in ``final`` also when raising)."""
        self.wake = asyncio.Event()
        self._started = time.monotonic()
        message: str | None = None
        status = "done"
        upkeep = asyncio.get_running_loop().create_task(self._keep_claims())
        try:
            try:
                if self.queue:
                    await self._learn_limits()
                await self._loop()
                if self.fatal is not None:
                    await self._cancel_inflight()
                    status = "failed"
                    left = self.rows.unfinished()
                    self.rows.finish_all(left, f"NOT_SENT: the run stopped on {self.fatal.code}")
                    message = f"Stopped: {describe(self.fatal)}"
                elif self.stop_error is not None:
                    status = "stopped"
                    message = f"Stopped: {self.stop_error.message}"
            except BaseException as exc:
                await self._cancel_inflight()
                status = "failed"
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                    status = "interrupted"
                    self._interrupted = True
                    left = self.rows.remaining
                    self.rows.finish_all(
                        self.rows.unfinished(), "INTERRUPTED: the extraction was interrupted"
                    )
                    message = (
                        f"Interrupted: {self.rows.done} of {self.rows.n} rows done, {left} "
                        "unfinished (error INTERRUPTED). The partial frame is in "
                        "koine_jupyter.extract.last_result."
                    )
                raise
            finally:
                self._ended = time.monotonic()
                self.pending.cancel()
                upkeep.cancel()
                self._claims.release(self.ledger)
                for client in self._own_clients:
                    try:
                        await client.aclose()
                    except Exception:
                        pass
                df = self.frame()
                self.final = df
                record_end(self, status, self.stats().as_dict())
                if message is None and self.budget_hit:
                    message = f"Stopped: {self.budget_hit}."
                if self.view is not None:
                    try:
                        self.view.finish(message)
                    except Exception:
                        pass
        finally:
            self.finished_event.set()
        if self.fatal is not None:
            raise KoineError(
                f"extract stopped: {self.fatal.message} ({self.rows.done} rows done; nothing "
                "more was sent; the frame is in koine_jupyter.extract.last_result)",
                self.fatal.code,
                self.fatal.raw_text,
                status=self.fatal.status,
            )
        if self.stop_error is not None:
            raise self.stop_error
        return df

    async def _learn_limits(self) -> None:
        """Each gateway's limit from ``/health``; ``concurrency=`` is capped by it."""

        async def learn(r: Replica) -> None:
            if self._concurrency is not None:
                r.set_limit(self._concurrency)
            if getattr(r.client, "replay", "off") == "strict":
                # a strict client answers from its ledger or refuses: it never talks to a
                # gateway, so it is not asked for one's health either
                r.answered = True
                return
            try:
                health = await call_on_home(r.client, lambda c: c.health(timeout=HEALTH_TIMEOUT))
            except KoineError as exc:
                if is_connection_trouble(exc):
                    r.on_connection_failure(time.monotonic(), 0.0, describe(exc))
                return
            except Exception:
                return
            r.answered = True
            if health.concurrency is not None:
                slots = health.concurrency.non_streaming
                limit = slots.limit
                if self._concurrency is not None:
                    limit = min(limit, self._concurrency)
                r.set_limit(limit, slots.active)

        await asyncio.gather(*(learn(r) for r in self.replicas))

    def _budget_left(self) -> bool:
        limits = self.limits
        if limits.max_rows is not None and self._requests >= limits.max_rows:
            self.budget_hit = f"max_rows={limits.max_rows} requests sent"
            return False
        spent = self.input_tokens + self.output_tokens
        if limits.max_tokens is not None and spent >= limits.max_tokens:
            self.budget_hit = f"max_tokens={limits.max_tokens} reached ({spent} tokens spent)"
            return False
        return True

    def _budget_waits(self) -> bool:
        """With ``max_tokens``, the requests in flight will be paid too: they count at the run's
        average so far, and before any answer only one request is in flight, so the budget is
        passed by about one request at most. True: send nothing new until one finishes."""
        limits = self.limits
        if limits.max_tokens is None or not self._inflight:
            return False
        finished = self._requests - len(self._inflight)
        if finished <= 0:
            return True
        spent = self.input_tokens + self.output_tokens
        return spent + len(self._inflight) * spent / finished >= limits.max_tokens

    def _pick(self, unit: Unit, now: float) -> Replica | None:
        best: Replica | None = None
        best_score: tuple[int, int] = (0, 0)
        for r in self.replicas:
            free = r.capacity(now)
            if free <= 0:
                continue
            score = (0 if r.number in unit.avoid else 1, free)
            if best is None or score > best_score:
                best, best_score = r, score
        return best

    def _dispatch(self) -> None:
        if self.fatal is not None:
            return
        now = time.monotonic()
        while self.queue:
            unit = self.queue[0]
            if not unit.claimed:
                self._claim_ahead()
                continue
            if not unit.counted and not self._budget_left():
                self._fail_queue_budget()
                continue
            if not unit.counted and self._budget_waits():
                return  # dispatched again when a request in flight finishes
            replica = self._pick(unit, now)
            if replica is None:
                return
            self.queue.popleft()
            if not unit.counted:
                unit.counted = True
                self._requests += 1
            if unit.started is None:
                unit.started = time.time()
            unit.sent_at = now
            replica.active += 1
            replica.sent += 1
            task = asyncio.get_running_loop().create_task(self._attempt(unit, replica))
            self._inflight[task] = (unit, replica)

    def _claim_ahead(self) -> None:
        """Claim the keys of the next units in one ledger transaction (twice what the gateways
        take at once): those another run is asking leave the queue to wait for its answer."""
        live = [r for r in self.replicas if not r.dead] or self.replicas
        ahead = max(16, 2 * sum(max(1, r.limit) for r in live))
        popped: list[Unit] = []
        while self.queue and len(popped) < ahead:
            popped.append(self.queue.popleft())
        fresh = [u for u in popped if not u.claimed]
        taken = self._claims.take(self.ledger, fresh)
        gone = {id(u) for u in fresh} - {id(u) for u in taken.send}
        self.queue.extendleft(reversed([u for u in popped if id(u) not in gone]))
        self._answered_elsewhere(taken)

    def _answered_elsewhere(self, taken: Taken) -> None:
        """Rows whose answer another run recorded while this one waited (0 tokens here)."""
        for unit, record in taken.answered:
            if not self._fill_from(unit, record):
                self.queue.append(unit)  # the record does not fit this run: ask

    def _fill_from(self, unit: Unit, record: LedgerRecord) -> bool:
        values = [self.verb.replay(record) for _ in unit.positions]
        if any(v is None for v in values):
            return False
        for pos, value in zip(unit.positions, values, strict=True):
            self.rows.finish(
                pos, values=value, tokens=(0, 0), attempts=record.attempts, answer_from=FROM_LEDGER
            )
        self.ledger_usage.append((record.input_tokens, record.output_tokens))
        return True

    async def _keep_claims(self) -> None:
        """Renew this run's claims while it lives, release what finished, and take the rows
        another run was asking for when their answer lands (or when that run is gone)."""
        while True:
            await asyncio.sleep(CLAIMS_POLL)
            if not self._claims.due(time.monotonic()):
                continue
            taken = self._claims.look(self.ledger)
            self.queue.extend(taken.send)
            self._answered_elsewhere(taken)
            if (taken.send or taken.answered) and self.wake is not None:
                self.wake.set()

    def _fail_queue_budget(self) -> None:
        # Retries of rows already counted keep their place; only new rows are refused.
        keep: collections.deque[Unit] = collections.deque()
        for unit in [*self.queue, *self.later]:
            if unit.counted:
                keep.append(unit)
            else:
                self.rows.finish_all(unit.positions, f"BUDGET_EXCEEDED: {self.budget_hit}")
        self.queue, self.later = keep, []

    async def _attempt(self, unit: Unit, replica: Replica) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            async with self.gate(replica) if self.gate is not None else nullcontext():
                if self.gate is not None:
                    unit.sent_at = time.monotonic()  # sent when the lease came
                result = await self.verb.ask(replica.client, unit.prompt, self._options)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        task = asyncio.current_task()
        assert task is not None and self.wake is not None
        # Handle the outcome and start the next request right here, in this task: waking the
        # scheduler first would leave the slot idle for a loop iteration per row.
        try:
            level = replica.active
            self._inflight.pop(task, None)
            replica.active -= 1
            handle(self, unit, replica, level, result, error)
            if self.rows.finished[unit.positions[0]]:
                self._claims.finished(unit.key)
            self._dispatch()
            if self.view is not None:
                self.view.poke()
        except BaseException as exc:  # a bug: hand it to the scheduler, never lose it
            self._crash = exc
            self.wake.set()
            return
        if not self._inflight or error is not None:
            self.wake.set()  # the scheduler decides: the end, or a timer for a cooldown

    def _next_wake(self) -> float | None:
        now = time.monotonic()
        waits = [r.cool_until - now for r in self.replicas if not r.dead and r.cool_until > now]
        return max(0.0, min(waits)) if waits else None

    async def _loop(self) -> None:
        wake = self.wake
        assert wake is not None
        while True:
            self._dispatch()
            if self.view is not None:
                self.view.poke()
            if self.fatal is not None or self.stop_error is not None:
                return
            if not (self.queue or self._inflight or self.pending.held or self._claims.waiting):
                if self.sampling:
                    end_sample(self)
                    if self.stop_after_sample or self.stop_error is not None:
                        return
                    continue
                return
            if self.queue and not self._inflight and all(r.dead for r in self.replicas):
                reason = "; ".join(
                    f"{r.base_url}: {r.last_error}" for r in self.replicas if r.last_error
                )
                error = f"NETWORK_ERROR: every gateway failed ({reason})"
                for unit in [*self.queue, *self.later]:
                    self.rows.finish_all(unit.positions, error)
                self.queue.clear()
                self.later = []
                continue
            timeout = self._next_wake() if self.queue else None
            if timeout is None and not self._inflight:
                timeout = POLL  # never wait for nothing (defensive: should not happen)
            wake.clear()
            try:
                async with asyncio.timeout(timeout):
                    await wake.wait()
            except TimeoutError:
                pass
            if self._crash is not None:
                raise self._crash

    async def _cancel_inflight(self) -> None:
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_GRACE)
        self._inflight.clear()
