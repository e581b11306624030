"""The rows of one extraction as they finish: values, errors, tokens, where each answer came
from; the frame, its preview and the progress snapshot are read from here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._columns import Column, RowValues, frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FROM_DUPLICATE", "FROM_LEDGER", "FROM_NOT_SENT", "FROM_REQUEST", "Rows", "Unit"]

FROM_REQUEST = "request"  # answered by a request of this call (its tokens are on this row)
FROM_DUPLICATE = "duplicate"  # same request as an earlier row of this call: 0 tokens
FROM_LEDGER = "ledger"  # answered in an earlier call (the ledger): 0 tokens now
FROM_NOT_SENT = "not_sent"  # never sent (refused before sending, budget, interrupt, fatal stop)
PREVIEW_ROWS = 10


@dataclass(slots=True)
class Unit:
    """One request: a distinct prompt, and the rows (positions) its answer fills."""

    prompt: str
    key: str
    positions: list[int]
    throttled: int = 0
    isolated_failures: int = 0
    counted: bool = False
    claimed: bool = False  # its key was claimed in the ledger (see _claiming)
    others: tuple[str, ...] = ()  # its keys under the run's other models (other replicas)
    sent_at: float = 0.0  # monotonic, of the latest attempt
    started: float | None = None  # wall clock, of the first attempt
    avoid: set[int] = field(default_factory=lambda: set[int]())
    broke_on: set[int] = field(default_factory=lambda: set[int]())  # gateways it failed to reach


class Rows:
    """Per-row results, filled once each (the first finish of a row wins)."""

    def __init__(self, n: int, index: Any, columns: Sequence[Column]) -> None:
        self.n = n
        self.index = index
        self.columns = columns
        self.values: list[tuple[Any, ...] | None] = [None] * n
        self.extras = [RowValues() for _ in range(n)]
        self.finished = [False] * n
        self.order: list[int] = []
        self.done = 0
        self.failed = 0
        self.from_ledger = 0
        self.duplicates = 0
        self.requested = 0  # rows finished by a request of this call (for the rate)

    def finish(
        self,
        pos: int,
        *,
        values: tuple[Any, ...] | None = None,
        error: str | None = None,
        tokens: tuple[int, int] | None = None,
        attempts: int | None = None,
        answer_from: str | None = None,
    ) -> None:
        if self.finished[pos]:
            return
        self.finished[pos] = True
        self.values[pos] = values
        extra = self.extras[pos]
        extra.error = error
        if tokens is not None:
            extra.input_tokens, extra.output_tokens = tokens
        extra.attempts = attempts
        extra.answer_from = answer_from
        self.order.append(pos)
        if error is None:
            self.done += 1
        else:
            self.failed += 1
        if answer_from == FROM_LEDGER:
            self.from_ledger += 1
        elif answer_from == FROM_DUPLICATE:
            self.duplicates += 1
            self.requested += 1
        elif answer_from == FROM_REQUEST:
            self.requested += 1

    def finish_all(self, positions: Sequence[int], error: str) -> None:
        """Rows that end without a request of theirs (budget, interrupt, a fatal stop)."""
        for pos in positions:
            self.finish(pos, error=error, answer_from=FROM_NOT_SENT)

    def unfinished(self) -> list[int]:
        return [p for p in range(self.n) if not self.finished[p]]

    @property
    def remaining(self) -> int:
        return self.n - self.done - self.failed

    def frame(self) -> pd.DataFrame:
        return frame(self.columns, self.values, self.extras, self.index)

    def preview(self) -> pd.DataFrame:
        recent = sorted(self.order[-PREVIEW_ROWS:])
        return frame(
            self.columns,
            [self.values[p] for p in recent],
            [self.extras[p] for p in recent],
            self.index.take(recent),
        )
