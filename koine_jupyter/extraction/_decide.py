"""What happens after a request finishes, decided as a value: a pure function of plain facts.

:func:`decide` looks at the error (or none), the row's history and the run's limits, and
returns a :class:`Decision`: what becomes of the row (:class:`Done`, :class:`Requeue`,
:class:`Fail`, :class:`Fatal`) and of the gateway that answered (``success``, ``answer``,
``cool`` for a 429, ``connection`` for a request that did not get through, ``out`` when it can
never serve this run, ``none`` when nothing reached it). The run applies it in one place
(``_outcomes.Outcomes._apply``). No I/O, no clock, no event loop: every branch is unit-tested
with values alone.

**Row faults stay row faults.** A request that does not get through (a proxy's 502, an empty
500, a connection closed before the headers) says nothing yet about the gateway: the same row
may break the proxy every time while every other row passes. So a ``connection`` outcome does
not cool the gateway; the run asks the gateway's ``/health`` (``_pending.check_health``), and
only a health check that fails too starts an outage. The row is sent again after a short
back-off (:data:`ROW_BACKOFF`, doubling) and, after :data:`ROW_CONNECTION_FAILURES` retries
on reachable gateways, fails with its own error and a note that says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from koine_sdk import KoineConnectionError, KoineError

__all__ = [
    "DEFAULT_429_WAIT",
    "ROW_CONNECTION_FAILURES",
    "Decision",
    "Done",
    "Facts",
    "Fail",
    "Fatal",
    "Requeue",
    "decide",
    "describe",
    "is_connection_trouble",
    "row_fault",
]

DEFAULT_429_WAIT = 1.0  # seconds, when a 429 comes without Retry-After (doubles per 429)
ROW_CONNECTION_FAILURES = 3  # retries of a row whose request does not get through (no outage)
ROW_BACKOFF = 0.05  # seconds before the first retry of such a row (doubles per failure)


def describe(exc: BaseException) -> str:
    """``CODE: message`` of an error, as a row and a gateway's last error show it."""
    if isinstance(exc, KoineError):
        return f"{exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}"


def row_fault(error: BaseException, attempts: int) -> BaseException:
    """The row's error after ``attempts`` that did not get through while its gateway was up:
    the same code, and a message that says whose fault it is."""
    note = (
        f"this row failed on each of its {attempts} attempts while the gateway stayed "
        "reachable: a fault of this row's request, not of the gateway"
    )
    if isinstance(error, KoineError):
        return error.replace(message=f"{error.message} ({note})")
    return error


def is_connection_trouble(exc: BaseException) -> bool:
    """The request did not get through (the SDK's category: a broken connection, or a 5xx from
    something in front of the gateway)."""
    return isinstance(exc, KoineConnectionError)


@dataclass(frozen=True, slots=True)
class Facts:
    """What is known when a request finished."""

    error: BaseException | None
    throttled: int = 0  # 429s this row had before
    isolated_failures: int = 0  # connection failures of this row on a healthy gateway before
    healthy_when_sent: bool = True  # the gateway was not in an outage when this was sent
    other_replicas: bool = False  # another gateway of the run is still in
    untried_replica: bool = False  # ... that this row has not failed on
    max_retries: int = 8
    max_retry_after: float = 30.0


@dataclass(frozen=True, slots=True)
class Done:
    """The answer fills the row(s)."""


@dataclass(frozen=True, slots=True)
class Requeue:
    """Ask again: at the ``front`` of the queue (a retry that keeps its turn) or at the back
    (the next probe of a gateway in trouble is another row); ``avoid`` this gateway; after
    ``delay`` seconds (the row sits out a back-off; the rest of the run goes on)."""

    front: bool
    avoid: bool = False
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Fail:
    """The row fails with ``error``; ``record``: write it to the ledger (the gateway answered)."""

    error: BaseException
    record: bool


@dataclass(frozen=True, slots=True)
class Fatal:
    """Every further request would get this too: the run stops, nothing more is sent."""

    error: KoineError


RowOutcome = Done | Requeue | Fail | Fatal
ReplicaOutcome = Literal["success", "answer", "cool", "connection", "out", "none"]


@dataclass(frozen=True, slots=True)
class Decision:
    row: RowOutcome
    replica: ReplicaOutcome
    wait: float = 0.0  # for "cool": seconds before this gateway takes a new request
    throttled: bool = False  # count a 429 (the row's and the run's)
    isolated: bool = False  # count a connection failure of this row on a healthy gateway


def decide(facts: Facts) -> Decision:
    """The decision for one finished request (see the module's docstring)."""
    error = facts.error
    if error is None:
        return Decision(Done(), "success")
    if isinstance(error, KoineError) and error.fatal:
        if facts.other_replicas:
            return Decision(Requeue(front=True, avoid=True), "out")
        return Decision(Fatal(error), "out")
    if isinstance(error, KoineError) and error.code == "CONCURRENCY_LIMIT_ERROR":
        count = facts.throttled + 1
        wait = (
            error.retry_after
            if error.retry_after is not None
            else DEFAULT_429_WAIT * 2 ** min(count - 1, 6)
        )
        wait = min(facts.max_retry_after, max(0.0, wait))
        if count > facts.max_retries:
            return Decision(Fail(error, record=False), "cool", wait, throttled=True)
        return Decision(Requeue(front=True), "cool", wait, throttled=True)
    if is_connection_trouble(error):
        # the gateway's health is checked by the run; the row is counted only when its
        # gateway was not in an outage (a restart is not the row's fault)
        isolated = facts.healthy_when_sent
        failures = facts.isolated_failures + (1 if isolated else 0)
        if failures > ROW_CONNECTION_FAILURES:
            fault = row_fault(error, failures)
            return Decision(Fail(fault, record=False), "connection", isolated=isolated)
        # the back-off is for asking the same gateway again: another one is asked next, with no
        # wait (its answer tells whose fault it was, before many more rows are sent here)
        backoff = isolated and not facts.untried_replica
        delay = ROW_BACKOFF * 2 ** (failures - 1) if backoff else 0.0
        again = Requeue(front=facts.untried_replica, avoid=True, delay=delay)
        return Decision(again, "connection", isolated=isolated)
    if isinstance(error, KoineError) and error.code == "REPLAY_MISS":
        return Decision(Fail(error, record=False), "none")  # nothing was sent
    return Decision(Fail(error, record=True), "answer")
