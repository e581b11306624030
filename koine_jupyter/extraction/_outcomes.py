"""What happens when a request finishes: the row is filled, the ledger written, the gateway's
window and health updated; and, after a sample, the estimate and the budget check."""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from koine_sdk import KoineError
from koine_sdk.ledger import LedgerWarning, process_ledger

from ._decide import Done, Facts, Fail, Requeue, decide, describe, is_connection_trouble
from ._estimate import BudgetExceededError, project
from ._pending import Pending
from ._replica import Replica
from ._state import FROM_DUPLICATE, FROM_LEDGER, FROM_NOT_SENT, FROM_REQUEST, Unit

if TYPE_CHECKING:
    import asyncio
    import collections

    from koine_sdk.ledger import Ledger, RequestShape

    from ._estimate import Estimate
    from ._state import Rows
    from ._verbs import Verb

__all__ = ["LedgerFailure", "Outcomes", "RunFields", "describe", "is_connection_trouble"]


@dataclass(frozen=True, slots=True)
class LedgerFailure:
    """The ledger a run wrote to until a write failed (a full disk, an I/O error), and why:
    the rest of the run went to the process's memory, and the run is marked failed there."""

    ledger: Ledger
    error: str


class _Limits(Protocol):
    @property
    def max_rows(self) -> int | None: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def max_retry_after(self) -> float: ...
    @property
    def max_tokens(self) -> int | None: ...


class RunFields:
    """The private state of one run, declared once: :class:`._run.Run` sets it up, and only the
    run's own methods read and write it (the scheduler in ``_run``, the outcomes here, the
    claims in ``_claiming``). Nothing outside the run touches it: the run's public surface is
    its methods and read-only properties."""

    _rows: Rows
    _verb: Verb
    _replicas: list[Replica]
    _queue: collections.deque[Unit]
    _later: list[Unit]
    _ledger: Ledger
    _shape: RequestShape
    _run_id: str | None
    _ledger_warned: bool
    _ledger_failure: LedgerFailure | None
    _throttled: int
    _input_tokens: int
    _output_tokens: int
    _sampling: bool
    _sample_usage: list[tuple[int, int]]
    _sample_seconds: list[float]
    _ledger_usage: list[tuple[int, int]]
    _estimate: Estimate | None
    _stop_after_sample: bool
    _announce: Callable[[str], None] | None
    _budget_hit: str | None
    _stop_error: KoineError | None
    _fatal: KoineError | None
    _wake: asyncio.Event | None
    _pending: Pending
    _limits: _Limits


_BEFORE_SENDING = frozenset(
    {"REPLAY_MISS", "INVALID_ARGUMENT", "PROMPT_TOO_LARGE", "CLIENT_CLOSED"}
)
"""Codes a client raises before a request leaves the process."""


def _usage_of(obj: Any) -> tuple[int, int] | None:
    usage = getattr(obj, "usage", None)
    if usage is None:
        return None
    return int(getattr(usage, "input_tokens", 0)), int(getattr(usage, "output_tokens", 0))


class Outcomes(RunFields):
    """What happens when a request finished, applied in one place (:meth:`_apply`)."""

    def _apply(
        self,
        unit: Unit,
        replica: Replica,
        level: int,
        result: Any,
        error: BaseException | None,
    ) -> None:
        """Decide (:func:`._decide.decide`, pure) and apply the decision: the one place where a
        finished request changes the run, the row and the gateway."""
        now = time.monotonic()
        facts = Facts(
            error=error,
            throttled=unit.throttled,
            isolated_failures=unit.isolated_failures,
            healthy_when_sent=not replica.in_outage
            or unit.sent_at < (replica.outage_started or 0.0),
            other_replicas=any(not r.dead for r in self._replicas if r is not replica),
            untried_replica=any(
                not r.dead and r.number not in unit.avoid
                for r in self._replicas
                if r is not replica
            ),
            max_retries=self._limits.max_retries,
            max_retry_after=self._limits.max_retry_after,
        )
        decision = decide(facts)
        # the gateway
        if decision.replica == "success":
            replica.on_success(unit.sent_at)
        elif decision.replica == "answer":
            replica.on_answer(unit.sent_at)
        elif decision.replica == "cool":
            replica.on_throttled(now, level, decision.wait)
        elif decision.replica == "connection":
            assert error is not None
            replica.on_failed_request(describe(error))
            self._pending.check_health(replica, self._wake_up)
        elif decision.replica == "out":
            assert error is not None
            replica.dead = True
            replica.last_error = describe(error)
        # the counters
        if decision.throttled:
            self._throttled += 1
            unit.throttled += 1
        if decision.isolated:
            unit.isolated_failures += 1
            unit.broke_on.add(replica.number)
        # the row
        row = decision.row
        if isinstance(row, Done):
            for number in unit.broke_on - {replica.number}:
                # it failed there and was answered here: that gateway's fault, not the row's
                other = self._replicas[number]
                other.on_misfit(any(not r.dead for r in self._replicas if r is not other))
            self._succeeded(unit, result, replica)
        elif isinstance(row, Requeue):
            if row.avoid:
                unit.avoid.add(replica.number)
            if row.delay > 0:
                self._pending.hold(unit, row.delay, self._requeue)
            elif row.front:
                self._queue.appendleft(unit)
            else:
                self._queue.append(unit)
        elif isinstance(row, Fail):
            self._failed(unit, row.error, record=row.record, replica=replica)
        else:
            self._fatal = row.error
            self._rows.finish_all(unit.positions, describe(row.error))
            if self._wake is not None:
                self._wake.set()

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _requeue(self, unit: Unit) -> None:
        """A row back from its back-off (a run that stopped meanwhile has finished it)."""
        if self._fatal is None:
            self._queue.append(unit)
        self._wake_up()

    def _succeeded(self, unit: Unit, result: Any, replica: Replica) -> None:
        # A client in replay mode may answer from its ledger: nothing was paid now, the answer is
        # already recorded there, and the row says where it came from.
        replayed = getattr(result, "source", "live") == "replay"
        tokens = (0, 0) if replayed else (_usage_of(result) or (0, 0))
        attempts = 0 if replayed else int(getattr(result, "attempts", 1))
        self._input_tokens += tokens[0]
        self._output_tokens += tokens[1]
        finished = time.time()
        if self._sampling and not replayed:
            self._sample_usage.append(tokens)
            self._sample_seconds.append(finished - (unit.started or finished))
        if not replayed:
            answer, raw_text = self._verb.answer(result)
            self._write(
                unit,
                replica,
                status="ok",
                answer=answer,
                raw_text=raw_text,
                answered_by=replica.client.config.model,  # the replica's own (default) model
                input_tokens=tokens[0],
                output_tokens=tokens[1],
                session_id=getattr(result, "session_id", None),
                attempts=attempts,
                started=unit.started,
                finished=finished,
            )
        values = self._verb.values(result)
        first = True
        for pos in unit.positions:
            if first:
                self._rows.finish(
                    pos,
                    values=values,
                    tokens=tokens,
                    attempts=attempts,
                    answer_from=FROM_LEDGER if replayed else FROM_REQUEST,
                )
                first = False
            else:
                self._rows.finish(
                    pos,
                    values=_copy(values),
                    tokens=(0, 0),
                    attempts=attempts,
                    answer_from=FROM_LEDGER if replayed else FROM_DUPLICATE,
                )

    def _failed(
        self,
        unit: Unit,
        error: BaseException,
        *,
        record: bool,
        replica: Replica | None = None,
    ) -> None:
        tokens = _usage_of(error)
        attempts = getattr(error, "attempts", None)
        if tokens is not None:
            self._input_tokens += tokens[0]
            self._output_tokens += tokens[1]
        if self._sampling and tokens is not None:
            self._sample_usage.append(tokens)
        if record:
            code = error.code if isinstance(error, KoineError) else type(error).__name__
            message = error.message if isinstance(error, KoineError) else str(error)
            self._write(
                unit,
                replica,
                status="failed",
                error_code=code,
                error_message=message,
                input_tokens=tokens[0] if tokens else 0,
                output_tokens=tokens[1] if tokens else 0,
                attempts=int(attempts) if attempts is not None else 1,
                started=unit.started,
                finished=time.time(),
            )
        text = describe(error)
        # refused before anything left this process: the row says so (no request was made)
        unsent = isinstance(error, KoineError) and error.code in _BEFORE_SENDING
        first = True
        for pos in unit.positions:
            self._rows.finish(
                pos,
                error=text,
                tokens=(tokens if first else (0, 0)) if tokens is not None else None,
                attempts=int(attempts) if attempts is not None else None,
                answer_from=FROM_NOT_SENT if unsent else FROM_REQUEST if first else FROM_DUPLICATE,
            )
            first = False

    def _write(self, unit: Unit, replica: Replica | None, **outcome: Any) -> None:
        """Commit one finished request, keyed by the model of the replica that sent it; a ledger
        that fails mid-run is swapped for the process's in-memory one (with a warning), never the
        run's end."""
        shape = replica.shape if replica is not None and replica.shape is not None else self._shape
        key = unit.key if shape is self._shape else shape.key(unit.prompt)
        try:
            self._ledger.record(shape, unit.prompt, key=key, run_id=self._run_id, **outcome)
        except KoineError as exc:
            if self._ledger_failure is None:
                self._ledger_failure = LedgerFailure(self._ledger, describe(exc))
            if not self._ledger_warned:
                self._ledger_warned = True
                warnings.warn(
                    f"{exc.message}. The rest of this run is kept in this process only.",
                    LedgerWarning,
                    stacklevel=1,
                )
            self._ledger = process_ledger()
            try:
                self._ledger.record(shape, unit.prompt, key=key, **outcome)
            except KoineError:
                pass

    def _run_error(self) -> str | None:
        """Why the run is marked failed, if it is: its fatal error, else a ledger write that
        failed."""
        if self._fatal is not None:
            return describe(self._fatal)
        return self._ledger_failure.error if self._ledger_failure is not None else None

    def _record_end(self, status: str, stats: Mapping[str, Any]) -> None:
        """Record how the run ended in its ledger. A ledger that failed mid-run (the run went on in
        memory) gets the run marked ``failed`` with that error once it can be written again,
        instead of being left ``running``."""
        if self._run_id is None:
            return
        ends = [(self._ledger, status)]
        failure = self._ledger_failure
        if failure is not None and failure.ledger is not self._ledger:
            ends.insert(0, (failure.ledger, "failed"))
        for book, how in ends:
            try:
                book.finish_run(self._run_id, status=how, stats=stats)
            except KoineError:
                pass

    def _end_sample(self) -> None:
        """The sample is done: project the tokens of all rows, announce it, and stop (budget) or
        queue the rest."""
        self._sampling = False
        usage = self._sample_usage or self._ledger_usage
        remaining = sum(1 for u in self._later if not u.counted)
        self._estimate = project(
            usage,
            spent=(self._input_tokens, self._output_tokens),
            sampled=len(self._sample_usage),
            from_ledger=not self._sample_usage and bool(self._ledger_usage),
            remaining=remaining,
            seconds=self._sample_seconds,
            concurrency=sum(r.limit for r in self._replicas if not r.dead) or 1,
        )
        budget = self._limits.max_tokens
        if self._stop_after_sample:
            return
        if self._announce is not None:
            self._announce(str(self._estimate))
        if budget is not None and self._estimate.total_tokens > budget:
            self._budget_hit = (
                f"projected {self._estimate.total_tokens:,} tokens for all rows, above "
                f"max_tokens={budget:,}"
            )
            error = BudgetExceededError(
                f"{self._budget_hit}; nothing more was sent (the sampled rows are kept)",
                self._estimate,
            )
            self._stop_error = error
            for unit in self._later:
                self._rows.finish_all(unit.positions, f"BUDGET_EXCEEDED: {self._budget_hit}")
            self._later = []
            return
        self._queue.extend(self._later)
        self._later = []


def _copy(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return copy.deepcopy(values)
