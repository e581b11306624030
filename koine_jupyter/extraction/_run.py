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
from koine_sdk.ledger import Ledger, RequestShape

from ._claiming import ClaimsOfRun, SharedRun
from ._clients import ClientLike, KoineClient
from ._decide import describe
from ._estimate import Estimate
from ._outcomes import LedgerFailure, Outcomes
from ._pending import Pending, learn_limits
from ._replica import Replica
from ._state import Rows, Unit
from ._stats import RunStats

if TYPE_CHECKING:
    import pandas as pd

    from koine_jupyter.views.progress import ProgressSnapshot, ProgressView

    from ._options import Options
    from ._verbs import Verb

__all__ = ["Gate", "Limits", "Run"]

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


class Run(SharedRun, Outcomes):
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
        self._rows = rows
        self._verb = verb
        self._options = options
        self._shape = shape
        self._replicas = replicas
        self._own_clients = own_clients
        self._concurrency = concurrency
        self._limits = limits
        self._ledger = ledger
        self._run_id = run_id
        self._requests = 0
        self._throttled = 0
        self._input_tokens = 0
        self._output_tokens = 0
        self._budget_hit: str | None = None
        self._interrupted = False
        self._fatal: KoineError | None = None
        self._stop_error: KoineError | None = None
        self._started = time.monotonic()
        self._ended: float | None = None
        self._queue: collections.deque[Unit] = collections.deque()
        self._later: list[Unit] = []
        self._inflight: dict[asyncio.Task[Any], tuple[Unit, Replica]] = {}
        self._crash: BaseException | None = None
        self._wake: asyncio.Event | None = None
        self._pending = Pending()  # rows in a back-off, gateways' health checks
        self._view: ProgressView | None = None
        self._final: pd.DataFrame | None = None
        self._finished_event = threading.Event()
        self._ledger_warned = False
        self._ledger_failure: LedgerFailure | None = None
        self._estimate: Estimate | None = None
        self._stop_after_sample = stop_after_sample
        self._announce: Callable[[str], None] | None = None
        self._gate: Gate | None = None
        self._sample_usage: list[tuple[int, int]] = []
        self._sample_seconds: list[float] = []
        self._ledger_usage = list(ledger_usage)
        # cache=False asks for every row again: nothing to share with other runs
        self._claims = ClaimsOfRun(enabled=options.cache)
        if sample > 0 and units:
            step = len(units) / min(sample, len(units))
            picked = {int(i * step) for i in range(min(sample, len(units)))}
            self._queue.extend(u for i, u in enumerate(units) if i in picked)
            self._later = [u for i, u in enumerate(units) if i not in picked]
            self._sampling = True
        else:
            self._queue.extend(units)
            self._sampling = False

    # -- the public surface: everything else of the run is private -------------------------

    @property
    def run_id(self) -> str | None:
        """The run's id in its ledger (``None`` when the ledger could not start it)."""
        return self._run_id

    @property
    def final(self) -> pd.DataFrame | None:
        """The frame, once the run ended (also when :meth:`execute` raised)."""
        return self._final

    @property
    def finished(self) -> threading.Event:
        """Set when the run ended, whatever the reason (from any thread)."""
        return self._finished_event

    @property
    def fatal(self) -> KoineError | None:
        """The error that stopped the run, if one did."""
        return self._fatal

    @property
    def estimate(self) -> Estimate | None:
        """The projection made after the sample (``None`` before, or without a sample)."""
        return self._estimate

    def clients(self) -> list[ClientLike]:
        """The gateways' clients, in the order they were given."""
        return [r.client for r in self._replicas]

    def show(self, view: ProgressView | None, announce: Callable[[str], None] | None) -> None:
        """Draw progress on ``view`` and say the estimate with ``announce`` (before executing)."""
        self._view, self._announce = view, announce

    def use_gate(self, gate: Gate) -> None:
        """Hold a lease of the gateway's slots around each request (Dask; before executing)."""
        self._gate = gate

    def preview(self) -> pd.DataFrame:
        """The last rows that finished (for the progress view)."""
        return self._rows.preview()

    def finish_estimate(self) -> Estimate:
        """The estimate, projected from what is known when no row needed sampling (every row
        answered from the ledger or invalid)."""
        if self._estimate is None:
            self._end_sample()
        assert self._estimate is not None
        return self._estimate

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> ProgressSnapshot:
        from koine_jupyter.views.progress import ProgressSnapshot

        live = [r for r in self._replicas if not r.dead]
        now = time.monotonic()
        note: str | None = None
        if self._budget_hit:
            note = "budget reached"
        elif self._claims.waiting:
            note = f"{len(self._claims.waiting)} asked by another run: waiting for its answers"
        elif self._sampling:
            note = "estimating from a sample"
        elif any(r.cool_until > now and r.cooling_for_429 for r in live):
            note = "gateway busy (429): backing off"
        elif any(r.in_outage for r in live):
            note = "gateway unreachable: retrying"
        rows = self._rows
        return ProgressSnapshot(
            total=rows.n,
            done=rows.done,
            failed=rows.failed,
            cached=rows.from_ledger,
            in_flight=len(self._inflight),
            requested=rows.requested,
            elapsed=(self._ended or now) - self._started,
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
            concurrency=sum(max(1, int(min(r.window, r.ceiling))) for r in live),
            limit=sum(r.limit for r in live) or sum(r.limit for r in self._replicas),
            replicas_alive=len(live),
            replicas=len(self._replicas),
            note=note,
        )

    def stats(self) -> RunStats:
        rows = self._rows
        return RunStats(
            rows=rows.n,
            succeeded=rows.done,
            failed=rows.failed,
            ledger_hits=rows.from_ledger,
            duplicates=rows.duplicates,
            requests=self._requests,
            throttled=self._throttled,
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
            elapsed=round((self._ended or time.monotonic()) - self._started, 3),
            interrupted=self._interrupted,
            budget_exceeded=self._budget_hit,
            estimate=self._estimate.as_dict() if self._estimate else None,
            run_id=self._run_id,
            ledger=str(self._ledger.path) if self._ledger.path else ":memory:",
            verb=self._verb.name,
            gateways=tuple(r.stats() for r in self._replicas),
            error=self._run_error(),
        )

    def frame(self) -> pd.DataFrame:
        df = self._rows.frame()
        df.attrs["koine"] = self.stats().as_dict()
        return df

    # -- the ledger -------------------------------------------------------------------------

    # -- the scheduler ----------------------------------------------------------------------

    async def execute(self) -> pd.DataFrame:
        """Run every queued row; return the frame (kept in ``final`` also when raising)."""
        self._wake = asyncio.Event()
        self._started = time.monotonic()
        verb = self._verb.name  # what the messages call the run: extract, classify, generate
        message: str | None = None
        status = "done"
        upkeep = asyncio.get_running_loop().create_task(self._keep_claims())
        try:
            try:
                if self._queue:
                    await learn_limits(self._replicas, self._concurrency)
                await self._loop()
                if self._fatal is not None:
                    await self._cancel_inflight()
                    status = "failed"
                    left = self._rows.unfinished()
                    self._rows.finish_all(left, f"NOT_SENT: the run stopped on {self._fatal.code}")
                    message = f"Stopped: {describe(self._fatal)}"
                elif self._stop_error is not None:
                    status = "stopped"
                    message = f"Stopped: {self._stop_error.message}"
            except BaseException as exc:
                await self._cancel_inflight()
                status = "failed"
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                    status = "interrupted"
                    self._interrupted = True
                    left = self._rows.remaining
                    self._rows.finish_all(
                        self._rows.unfinished(), f"INTERRUPTED: the {verb} was interrupted"
                    )
                    message = (
                        f"Interrupted: {self._rows.done} of {self._rows.n} rows done, {left} "
                        "unfinished (error INTERRUPTED). The partial frame is in "
                        f"koine_jupyter.{verb}.last_result."
                    )
                raise
            finally:
                self._ended = time.monotonic()
                self._pending.cancel()
                upkeep.cancel()
                self._claims.release(self._ledger)
                for client in self._own_clients:
                    try:
                        await client.aclose()
                    except Exception:
                        pass
                df = self.frame()
                self._final = df
                self._record_end(status, self.stats().as_dict())
                if message is None and self._budget_hit:
                    message = f"Stopped: {self._budget_hit}."
                if self._view is not None:
                    try:
                        self._view.finish(message)
                    except Exception:
                        pass
        finally:
            self._finished_event.set()
        if self._fatal is not None:
            raise KoineError(
                f"{verb} stopped: {self._fatal.message} ({self._rows.done} rows done; nothing "
                f"more was sent; the frame is in koine_jupyter.{verb}.last_result)",
                self._fatal.code,
                self._fatal.raw_text,
                status=self._fatal.status,
            )
        if self._stop_error is not None:
            raise self._stop_error
        return df

    def _budget_left(self) -> bool:
        limits = self._limits
        if limits.max_rows is not None and self._requests >= limits.max_rows:
            self._budget_hit = f"max_rows={limits.max_rows} requests sent"
            return False
        spent = self._input_tokens + self._output_tokens
        if limits.max_tokens is not None and spent >= limits.max_tokens:
            self._budget_hit = f"max_tokens={limits.max_tokens} reached ({spent} tokens spent)"
            return False
        return True

    def _budget_waits(self) -> bool:
        """With ``max_tokens``, the requests in flight will be paid too: they count at the run's
        average so far, and before any answer only one request is in flight, so the budget is
        passed by about one request at most. True: send nothing new until one finishes."""
        limits = self._limits
        if limits.max_tokens is None or not self._inflight:
            return False
        finished = self._requests - len(self._inflight)
        if finished <= 0:
            return True
        spent = self._input_tokens + self._output_tokens
        return spent + len(self._inflight) * spent / finished >= limits.max_tokens

    def _pick(self, unit: Unit, now: float) -> Replica | None:
        """The gateway for ``unit``: one it has not failed on (it waits for one), with the most
        free slots. A
        gateway whose last request did not get through takes one request at a time while
        another gateway gets through (a proxy failing every request there would otherwise
        take the first attempt of most rows: its failures free its slots at once)."""
        best: Replica | None = None
        best_score: tuple[int, int] = (0, 0)
        healthy = any(not r.dead and not r.failing for r in self._replicas)
        # a row that failed on a gateway waits for another one that is up (even if busy)
        elsewhere = any(
            not r.dead and not r.in_outage and r.number not in unit.avoid for r in self._replicas
        )
        for r in self._replicas:
            if elsewhere and r.number in unit.avoid:
                continue
            free = r.capacity(now)
            if r.failing and healthy:
                free = min(free, 1 - r.active)
            if free <= 0:
                continue
            score = (0 if r.number in unit.avoid else 1, free)
            if best is None or score > best_score:
                best, best_score = r, score
        return best

    def _dispatch(self) -> None:
        if self._fatal is not None:
            return
        now = time.monotonic()
        while self._queue:
            unit = self._queue[0]
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
            self._queue.popleft()
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

    def _fail_queue_budget(self) -> None:
        # Retries of rows already counted keep their place; only new rows are refused.
        keep: collections.deque[Unit] = collections.deque()
        for unit in [*self._queue, *self._later]:
            if unit.counted:
                keep.append(unit)
            else:
                self._rows.finish_all(unit.positions, f"BUDGET_EXCEEDED: {self._budget_hit}")
        self._queue, self._later = keep, []

    async def _attempt(self, unit: Unit, replica: Replica) -> None:
        result: Any = None
        error: BaseException | None = None
        try:
            async with self._gate(replica) if self._gate is not None else nullcontext():
                if self._gate is not None:
                    unit.sent_at = time.monotonic()  # sent when the lease came
                result = await self._verb.ask(replica.client, unit.prompt, self._options)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = exc
        task = asyncio.current_task()
        assert task is not None and self._wake is not None
        # Handle the outcome and start the next request right here, in this task: waking the
        # scheduler first would leave the slot idle for a loop iteration per row.
        try:
            level = replica.active
            self._inflight.pop(task, None)
            replica.active -= 1
            self._apply(unit, replica, level, result, error)
            if self._rows.finished[unit.positions[0]]:
                self._claims.finished(unit.key)
            self._dispatch()
            if self._view is not None:
                self._view.poke()
        except BaseException as exc:  # a bug: hand it to the scheduler, never lose it
            self._crash = exc
            self._wake.set()
            return
        if not self._inflight or error is not None:
            self._wake.set()  # the scheduler decides: the end, or a timer for a cooldown

    def _next_wake(self) -> float | None:
        now = time.monotonic()
        waits = [r.cool_until - now for r in self._replicas if not r.dead and r.cool_until > now]
        return max(0.0, min(waits)) if waits else None

    async def _loop(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            self._dispatch()
            if self._view is not None:
                self._view.poke()
            if self._fatal is not None or self._stop_error is not None:
                return
            if not (self._queue or self._inflight or self._pending.held or self._claims.waiting):
                if self._sampling:
                    self._end_sample()
                    if self._stop_after_sample or self._stop_error is not None:
                        return
                    continue
                return
            if self._queue and not self._inflight and all(r.dead for r in self._replicas):
                reason = "; ".join(
                    f"{r.base_url}: {r.last_error}" for r in self._replicas if r.last_error
                )
                error = f"NETWORK_ERROR: every gateway failed ({reason})"
                for unit in [*self._queue, *self._later]:
                    self._rows.finish_all(unit.positions, error)
                self._queue.clear()
                self._later = []
                continue
            timeout = self._next_wake() if self._queue else None
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
