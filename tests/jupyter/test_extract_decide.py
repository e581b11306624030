"""The decisions after a request finishes, as values: ``decide`` is pure, tested without an
event loop, a gateway or a clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from koine_jupyter.extraction._decide import (
    DEFAULT_429_WAIT,
    ROW_BACKOFF,
    ROW_CONNECTION_FAILURES,
    Decision,
    Done,
    Facts,
    Fail,
    Fatal,
    Requeue,
    decide,
)
from koine_sdk import KoineError

BASE = Facts(error=None, max_retries=3, max_retry_after=10.0)


def error(code: str, status: int | None = None) -> KoineError:
    return KoineError(f"{code} happened", code, status=status)


def test_success_is_done_and_the_gateway_is_well() -> None:
    assert decide(BASE) == Decision(Done(), "success")


@pytest.mark.parametrize("code", ["AUTH_INVALID", "AUTH_MISSING", "NOT_FOUND", "INVALID_CONFIG"])
def test_fatal_stops_the_run_when_no_other_gateway_is_left(code: str) -> None:
    exc = error(code)
    decision = decide(replace(BASE, error=exc))
    assert decision.row == Fatal(exc) and decision.replica == "out"


def test_fatal_on_one_replica_moves_the_row_to_another() -> None:
    decision = decide(replace(BASE, error=error("AUTH_INVALID"), other_replicas=True))
    assert decision == Decision(Requeue(front=True, avoid=True), "out")


def test_429_cools_the_gateway_and_requeues_in_front() -> None:
    decision = decide(replace(BASE, error=error("CONCURRENCY_LIMIT_ERROR", 429)))
    assert decision.row == Requeue(front=True)
    assert decision.replica == "cool" and decision.throttled
    assert decision.wait == DEFAULT_429_WAIT  # no Retry-After: the first wait


def test_429_waits_double_and_are_capped_by_max_retry_after() -> None:
    decision = decide(replace(BASE, error=error("CONCURRENCY_LIMIT_ERROR", 429), throttled=2))
    assert decision.wait == DEFAULT_429_WAIT * 4
    capped = decide(
        replace(BASE, error=error("CONCURRENCY_LIMIT_ERROR", 429), throttled=2, max_retry_after=3)
    )
    assert capped.wait == 3.0


def test_429s_past_max_retries_fail_the_row_unrecorded() -> None:
    exc = error("CONCURRENCY_LIMIT_ERROR", 429)
    decision = decide(replace(BASE, error=exc, throttled=3))
    assert decision.row == Fail(exc, record=False) and decision.replica == "cool"


def test_connection_trouble_requeues_at_the_back_after_a_short_back_off() -> None:
    decision = decide(replace(BASE, error=error("NETWORK_ERROR")))
    again = Requeue(front=False, avoid=True, delay=ROW_BACKOFF)
    assert decision == Decision(again, "connection", isolated=True)
    later = decide(replace(BASE, error=error("HTTP_ERROR", 502), isolated_failures=2))
    assert later.row == Requeue(front=False, avoid=True, delay=ROW_BACKOFF * 4)  # doubles
    during_outage = decide(replace(BASE, error=error("NETWORK_ERROR"), healthy_when_sent=False))
    assert not during_outage.isolated  # an outage is the gateway's fault, not the row's
    assert during_outage.row == Requeue(front=False, avoid=True)  # probes wait for the gateway
    elsewhere = decide(replace(BASE, error=error("NETWORK_ERROR"), untried_replica=True))
    # another gateway takes it next, with no back-off: its answer says whose fault it was
    # before many more rows go to this one
    assert elsewhere.row == Requeue(front=True, avoid=True)


@pytest.mark.parametrize(("code", "status"), [("NETWORK_ERROR", None), ("HTTP_ERROR", 502)])
def test_a_row_that_keeps_failing_on_a_reachable_gateway_fails_as_its_own_fault(
    code: str, status: int | None
) -> None:
    exc = error(code, status)
    decision = decide(replace(BASE, error=exc, isolated_failures=ROW_CONNECTION_FAILURES))
    assert isinstance(decision.row, Fail) and not decision.row.record
    failed = decision.row.error
    assert isinstance(failed, KoineError)
    assert (failed.code, failed.status) == (code, status)  # the row keeps its own error
    attempts = ROW_CONNECTION_FAILURES + 1
    assert f"{code} happened (this row failed on each of its {attempts} attempts" in (
        failed.message
    )
    assert "not of the gateway" in failed.message
    assert decision.replica == "connection"  # the gateway's health is still checked
    waited = decide(
        replace(
            BASE,
            error=exc,
            isolated_failures=ROW_CONNECTION_FAILURES,
            healthy_when_sent=False,
        )
    )
    assert isinstance(waited.row, Requeue)


def test_replay_miss_fails_without_record_and_leaves_the_gateway_alone() -> None:
    exc = error("REPLAY_MISS")
    assert decide(replace(BASE, error=exc)) == Decision(Fail(exc, record=False), "none")


def test_any_other_answer_fails_the_row_and_is_recorded() -> None:
    exc = error("VALIDATION_ERROR", 400)
    assert decide(replace(BASE, error=exc)) == Decision(Fail(exc, record=True), "answer")
    bug = ValueError("boom")
    assert decide(replace(BASE, error=bug)) == Decision(Fail(bug, record=True), "answer")
