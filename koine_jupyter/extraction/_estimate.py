"""Estimate before spending: tokens per request measured on a sample, projected to all rows."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from koine_sdk import KoineError

__all__ = ["BudgetExceededError", "Estimate", "project"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """What the rows still to request will cost, projected from a sample.

    ``sampled`` requests were measured (``from_ledger``: no new request was needed, the
    figures come from answers recorded earlier); ``remaining`` requests are still to send.
    ``total_tokens`` = spent so far in this call + ``remaining`` x tokens per request.
    """

    sampled: int
    from_ledger: bool
    remaining: int
    input_per_request: float
    output_per_request: float
    spent_tokens: int
    total_tokens: int
    seconds: float | None

    @property
    def tokens_per_request(self) -> float:
        return self.input_per_request + self.output_per_request

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if self.sampled == 0:
            return f"Estimate: nothing measured; {self.remaining:,} requests still to send."
        source = "answers in the ledger" if self.from_ledger else "sampled requests"
        return (
            f"Estimate from {self.sampled} {source}: ~{self.tokens_per_request:,.0f} tokens per "
            f"request (input {self.input_per_request:,.0f}, output "
            f"{self.output_per_request:,.0f}); {self.remaining:,} more requests -> "
            f"~{self.total_tokens:,} tokens in all."
        )

    def _repr_markdown_(self) -> str:
        return str(self)


def project(
    usage: Sequence[tuple[int, int]],
    *,
    spent: tuple[int, int],
    sampled: int,
    from_ledger: bool,
    remaining: int,
    seconds: Sequence[float],
    concurrency: int,
) -> Estimate:
    n = len(usage)
    inp = sum(u[0] for u in usage) / n if n else 0.0
    out = sum(u[1] for u in usage) / n if n else 0.0
    spent_total = spent[0] + spent[1]
    total = spent_total + round(remaining * (inp + out))
    secs = statistics.fmean(seconds) * remaining / max(1, concurrency) if seconds else None
    return Estimate(
        sampled=sampled if sampled else n,
        from_ledger=from_ledger,
        remaining=remaining,
        input_per_request=inp,
        output_per_request=out,
        spent_tokens=spent_total,
        total_tokens=total,
        seconds=secs,
    )


class BudgetExceededError(KoineError):
    """``max_tokens`` would be passed: the projection made after the sample says so. A
    ``KoineError`` with the code ``BUDGET_EXCEEDED``; the projection is :attr:`estimate`."""

    estimate: Estimate

    def __new__(cls, message: str, estimate: Estimate) -> BudgetExceededError:
        return Exception.__new__(cls)

    def __init__(self, message: str, estimate: Estimate) -> None:
        super().__init__(message, "BUDGET_EXCEEDED")
        self.estimate = estimate

    def __reduce__(self) -> tuple[Any, ...]:  # pickled across Dask workers
        return (BudgetExceededError, (self.message, self.estimate))
