"""What happens when a request finishes: the row is filled, the ledger written, the gateway's
window and health updated; and, after a sample, the estimate and the budget check."""

from __future__ import annotations

import copy
import time
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from koine_sdk import KoineConnectionError, KoineError
from koine_sdk.ledger import LedgerWarning, process_ledger

from ._columns import flatten
from ._estimate import project
from ._replica import Replica
from ._state import FROM_DUPLICATE, FROM_LEDGER, FROM_NOT_SENT, FROM_REQUEST, Unit

if TYPE_CHECKING:
    from ._run import Run

__all__ = ["describe", "end_sample", "handle", "is_connection_trouble"]
DEFAULT_429_WAIT = 1.0  # seconds, when a 429 comes without Retry-After (doubles per 429)
ROW_CONNECTION_FAILURES = 3  # a row that breaks the connection this often (no outage) fails


_BEFORE_SENDING = frozenset(
    {"REPLAY_MISS", "INVALID_ARGUMENT", "PROMPT_TOO_LARGE", "CLIENT_CLOSED"}
)
"""Codes a client raises before a request leaves the process."""


def describe(exc: BaseException) -> str:
    if isinstance(exc, KoineError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def is_connection_trouble(exc: KoineError) -> bool:
    """The request did not get through (the SDK's category: a broken connection, or a 5xx from
    something in front of the gateway)."""
    return isinstance(exc, KoineConnectionError)


def _usage_of(obj: Any) -> tuple[int, int] | None:
    usage = getattr(obj, "usage", None)
    if usage is None:
        return None
    return int(getattr(usage, "input_tokens", 0)), int(getattr(usage, "output_tokens", 0))


def handle(
    run: Run, unit: Unit, replica: Replica, level: int, result: Any, error: BaseException | None
) -> None:
    now = time.monotonic()
    if error is None:
        succeeded(run, unit, replica, result)
        return
    if isinstance(error, KoineError) and error.fatal:
        replica.dead = True
        replica.last_error = describe(error)
        if all(r.dead for r in run.replicas):
            run.fatal = error
            run.rows.finish_all(unit.positions, describe(error))
            if run.wake is not None:
                run.wake.set()
        else:
            unit.avoid.add(replica.number)
            run.queue.appendleft(unit)
        return
    if isinstance(error, KoineError) and error.code == "CONCURRENCY_LIMIT_ERROR":
        run.throttled += 1
        unit.throttled += 1
        if error.retry_after is not None:
            wait = error.retry_after
        else:
            wait = DEFAULT_429_WAIT * 2 ** min(unit.throttled - 1, 6)
        replica.on_throttled(now, level, min(run.limits.max_retry_after, max(0.0, wait)))
        if unit.throttled > run.limits.max_retries:
            failed(run, unit, error, record=False)
        else:
            run.queue.appendleft(unit)
        return
    if isinstance(error, KoineError) and is_connection_trouble(error):
        healthy_when_sent = not replica.in_outage or unit.sent_at < (replica.outage_started or 0.0)
        replica.on_connection_failure(now, unit.sent_at, describe(error))
        unit.avoid.add(replica.number)
        if healthy_when_sent:
            unit.isolated_failures += 1
        if unit.isolated_failures > ROW_CONNECTION_FAILURES:
            failed(run, unit, error, record=False)
        else:
            run.queue.append(unit)  # at the back: the next probe is another row
        return
    if isinstance(error, KoineError) and error.code == "REPLAY_MISS":
        failed(run, unit, error, record=False)  # nothing was sent, nothing to write down
        return
    replica.on_answer(unit.sent_at)
    failed(run, unit, error, record=True)


def succeeded(run: Run, unit: Unit, replica: Replica, result: Any) -> None:
    replica.on_success(unit.sent_at)
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
    obj = result.object
    if not replayed:
        write(
            run,
            unit,
            status="ok",
            answer=obj.model_dump_json(by_alias=True) if isinstance(obj, BaseModel) else None,
            raw_text=getattr(result, "raw_text", None),
            answered_by=replica.client.config.model,  # the replica's own (default) model
            input_tokens=tokens[0],
            output_tokens=tokens[1],
            session_id=getattr(result, "session_id", None),
            attempts=attempts,
            started=unit.started,
            finished=finished,
        )
    values = flatten(obj, run.rows.columns)
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


def failed(run: Run, unit: Unit, error: BaseException, *, record: bool) -> None:
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


def write(run: Run, unit: Unit, **outcome: Any) -> None:
    """Commit one finished request; a ledger that fails mid-run is swapped for the
    process's in-memory one (with a warning), never the run's end."""
    try:
        run.ledger.record(run.shape, unit.prompt, key=unit.key, run_id=run.run_id, **outcome)
    except KoineError as exc:
        if not run.ledger_warned:
            run.ledger_warned = True
            warnings.warn(
                f"{exc.message}. The rest of this run is kept in this process only.",
                LedgerWarning,
                stacklevel=1,
            )
        run.ledger = process_ledger()
        try:
            run.ledger.record(run.shape, unit.prompt, key=unit.key, **outcome)
        except KoineError:
            pass


def end_sample(run: Run) -> None:
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
