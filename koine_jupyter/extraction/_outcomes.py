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
from ._estimate import project
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

__all__ = [
    "LedgerFailure",
    "RunState",
    "describe",
    "end_sample",
    "handle",
    "is_connection_trouble",
    "record_end",
    "run_error",
]


@dataclass(frozen=True, slots=True)
class LedgerFailure:
    """The ledger a run wrote to until a write failed (a full disk, an I/O error), and why:
    the rest of the run went to the process's memory, and the run is marked failed there."""

    ledger: Ledger
    error: str


class _Limits(Protocol):
    @property
    def max_retries(self) -> int: ...
    @property
    def max_retry_after(self) -> float: ...
    @property
    def max_tokens(self) -> int | None: ...


class RunState(Protocol):
    """What applying an outcome reads and changes of a run (``_run.Run`` has it): declared
    here so that this module needs nothing from the scheduler (no import cycle)."""

    rows: Rows
    verb: Verb
    replicas: list[Replica]
    queue: collections.deque[Unit]
    later: list[Unit]
    ledger: Ledger
    shape: RequestShape
    run_id: str | None
    ledger_warned: bool
    ledger_failure: LedgerFailure | None
    throttled: int
    input_tokens: int
    output_tokens: int
    sampling: bool
    sample_usage: list[tuple[int, int]]
    sample_seconds: list[float]
    ledger_usage: list[tuple[int, int]]
    estimate: Estimate | None
    stop_after_sample: bool
    announce: Callable[[str], None] | None
    budget_hit: str | None
    stop_error: KoineError | None
    fatal: KoineError | None
    wake: asyncio.Event | None
    pending: Pending

    @property
    def limits(self) -> _Limits: ...


_BEFORE_SENDING = frozenset(
    {"REPLAY_MISS", "INVALID_ARGUMENT", "PROMPT_TOO_LARGE", "CLIENT_CLOSED"}
)
"""Codes a client raises before a request leaves the process."""


def _usage_of(obj: Any) -> tuple[int, int] | None:
    usage = getattr(obj, "usage", None)
    if usage is None:
        return None
    return int(getattr(usage, "input_tokens", 0)), int(getattr(usage, "output_tokens", 0))


def handle(
    run: RunState,
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
        healthy_when_sent=not replica.in_outage or unit.sent_at < (replica.outage_started or 0.0),
        other_replicas=any(not r.dead for r in run.replicas if r is not replica),
        untried_replica=any(
            not r.dead and r.number not in unit.avoid for r in run.replicas if r is not replica
        ),
        max_retries=run.limits.max_retries,
        max_retry_after=run.limits.max_retry_after,
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
        run.pending.check_health(replica, lambda: _wake(run))
    elif decision.replica == "out":
        assert error is not None
        replica.dead = True
        replica.last_error = describe(error)
    # the counters
    if decision.throttled:
        run.throttled += 1
        unit.throttled += 1
    if decision.isolated:
        unit.isolated_failures += 1
        unit.broke_on.add(replica.number)
    # the row
    row = decision.row
    if isinstance(row, Done):
        for number in unit.broke_on - {replica.number}:
            # it failed there and was answered here: that gateway's fault, not the row's
            other = run.replicas[number]
            other.on_misfit(any(not r.dead for r in run.replicas if r is not other))
        succeeded(run, unit, result, replica)
    elif isinstance(row, Requeue):
        if row.avoid:
            unit.avoid.add(replica.number)
        if row.delay > 0:
            run.pending.hold(unit, row.delay, lambda u: _requeue(run, u))
        elif row.front:
            run.queue.appendleft(unit)
        else:
            run.queue.append(unit)
    elif isinstance(row, Fail):
        failed(run, unit, row.error, record=row.record, replica=replica)
    else:
        run.fatal = row.error
        run.rows.finish_all(unit.positions, describe(row.error))
        if run.wake is not None:
            run.wake.set()


def _wake(run: RunState) -> None:
    if run.wake is not None:
        run.wake.set()


def _requeue(run: RunState, unit: Unit) -> None:
    """A row back from its back-off (a run that stopped meanwhile has finished it)."""
    if run.fatal is None:
        run.queue.append(unit)
    _wake(run)


def succeeded(run: RunState, unit: Unit, result: Any, replica: Replica) -> None:
    # A client in replay mode may answer from its ledger: nothing was paid now, the answer is
    # already recorded there, and the row says where it came from.
    replayed = getattr(result, "source", "live") == "replay"
    tokens = (0, 0) if replayed else (_usage_of(result) or (0, 0))
    attempts = 0 if replayed else int(getattr(result, "attempts", 1))
    run.input_tokens += tokens[0]
    run.output_tokens += tokens[1]
    finished = time.time()
    if run.sampling and not replayed:
        run.sample_usage.append(tokens)
        run.sample_seconds.append(finished - (unit.started or finished))
    if not replayed:
        answer, raw_text = run.verb.answer(result)
        write(
            run,
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
    values = run.verb.values(result)
    first = True
    for pos in unit.positions:
        if first:
            run.rows.finish(
                pos,
                values=values,
                tokens=tokens,
                attempts=attempts,
                answer_from=FROM_LEDGER if replayed else FROM_REQUEST,
            )
            first = False
        else:
            run.rows.finish(
                pos,
                values=_copy(values),
                tokens=(0, 0),
                attempts=attempts,
                answer_from=FROM_LEDGER if replayed else FROM_DUPLICATE,
            )


def failed(
    run: RunState,
    unit: Unit,
    error: BaseException,
    *,
    record: bool,
    replica: Replica | None = None,
) -> None:
    tokens = _usage_of(error)
    attempts = getattr(error, "attempts", None)
    if tokens is not None:
        run.input_tokens += tokens[0]
        run.output_tokens += tokens[1]
    if run.sampling and tokens is not None:
        run.sample_usage.append(tokens)
    if record:
        code = error.code if isinstance(error, KoineError) else type(error).__name__
        message = error.message if isinstance(error, KoineError) else str(error)
        write(
            run,
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
        run.rows.finish(
            pos,
            error=text,
            tokens=(tokens if first else (0, 0)) if tokens is not None else None,
            attempts=int(attempts) if attempts is not None else None,
            answer_from=FROM_NOT_SENT if unsent else FROM_REQUEST if first else FROM_DUPLICATE,
        )
        first = False


def write(run: RunState, unit: Unit, replica: Replica | None, **outcome: Any) -> None:
    """Commit one finished request, keyed by the model of the replica that sent it; a ledger
    that fails mid-run is swapped for the process's in-memory one (with a warning), never the
    run's end."""
    shape = replica.shape if replica is not None and replica.shape is not None else run.shape
    key = unit.key if shape is run.shape else shape.key(unit.prompt)
    try:
        run.ledger.record(shape, unit.prompt, key=key, run_id=run.run_id, **outcome)
    except KoineError as exc:
        if run.ledger_failure is None:
            run.ledger_failure = LedgerFailure(run.ledger, describe(exc))
        if not run.ledger_warned:
            run.ledger_warned = True
            warnings.warn(
                f"{exc.message}. The rest of this run is kept in this process only.",
                LedgerWarning,
                stacklevel=1,
            )
        run.ledger = process_ledger()
        try:
            run.ledger.record(shape, unit.prompt, key=key, **outcome)
        except KoineError:
            pass


def run_error(run: RunState) -> str | None:
    """Why the run is marked failed, if it is: its fatal error, else a ledger write that
    failed."""
    if run.fatal is not None:
        return describe(run.fatal)
    return run.ledger_failure.error if run.ledger_failure is not None else None


def record_end(run: RunState, status: str, stats: Mapping[str, Any]) -> None:
    """Record how the run ended in its ledger. A ledger that failed mid-run (the run went on in
    memory) gets the run marked ``failed`` with that error once it can be written again,
    instead of being left ``running``."""
    if run.run_id is None:
        return
    ends = [(run.ledger, status)]
    failure = run.ledger_failure
    if failure is not None and failure.ledger is not run.ledger:
        ends.insert(0, (failure.ledger, "failed"))
    for book, how in ends:
        try:
            book.finish_run(run.run_id, status=how, stats=stats)
        except KoineError:
            pass


def end_sample(run: RunState) -> None:
    """The sample is done: project the tokens of all rows, announce it, and stop (budget) or
    queue the rest."""
    run.sampling = False
    usage = run.sample_usage or run.ledger_usage
    remaining = sum(1 for u in run.later if not u.counted)
    run.estimate = project(
        usage,
        spent=(run.input_tokens, run.output_tokens),
        sampled=len(run.sample_usage),
        from_ledger=not run.sample_usage and bool(run.ledger_usage),
        remaining=remaining,
        seconds=run.sample_seconds,
        concurrency=sum(r.limit for r in run.replicas if not r.dead) or 1,
    )
    budget = run.limits.max_tokens
    if run.stop_after_sample:
        return
    if run.announce is not None:
        run.announce(str(run.estimate))
    if budget is not None and run.estimate.total_tokens > budget:
        run.budget_hit = (
            f"projected {run.estimate.total_tokens:,} tokens for all rows, above "
            f"max_tokens={budget:,}"
        )
        error = KoineError(
            f"{run.budget_hit}; nothing more was sent (the sampled rows are kept)",
            "BUDGET_EXCEEDED",
        )
        error.estimate = run.estimate  # pyright: ignore[reportAttributeAccessIssue]
        run.stop_error = error
        for unit in run.later:
            run.rows.finish_all(unit.positions, f"BUDGET_EXCEEDED: {run.budget_hit}")
        run.later = []
        return
    run.queue.extend(run.later)
    run.later = []


def _copy(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return copy.deepcopy(values)
