"""What the ledger reads back: records, runs of a group, and the checks that a row read from a
file (which may come from elsewhere) has the types a record has."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["RECORD_COLUMNS", "GroupRun", "LedgerRecord", "storable", "valid_row"]


@dataclass(frozen=True, slots=True)
class GroupRun:
    """One run of a Dask group, as :meth:`Ledger.group_runs` reads it (``stats`` is what the
    run stored when it ended, opaque here; ``None`` for a run that never ended)."""

    run_id: str
    status: str
    started: float
    ended: float | None
    rows: int | None
    params: dict[str, Any]
    stats: dict[str, Any] | None


RECORD_COLUMNS = (
    "key, run_id, endpoint, status, answer, raw_text, error_code, error_message, "
    "input_tokens, output_tokens, session_id, attempts, started, finished, id"
)


_RECORD_TYPES: tuple[tuple[type | tuple[type, ...], bool], ...] = (
    (str, False),  # key
    (str, True),  # run_id
    (str, False),  # endpoint
    (str, False),  # status
    (str, True),  # answer
    (str, True),  # raw_text
    (str, True),  # error_code
    (str, True),  # error_message
    (int, False),  # input_tokens
    (int, False),  # output_tokens
    (str, True),  # session_id
    (int, False),  # attempts
    ((int, float), True),  # started
    ((int, float), True),  # finished
    (int, False),  # id
)


def _fits(value: Any, kind: type | tuple[type, ...]) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    return not (isinstance(value, float) and not math.isfinite(value))


def valid_row(row: tuple[Any, ...]) -> bool:
    """Whether a row read from the file has the types a record has (a ledger may come from
    elsewhere: a wrong type is a bad record, skipped, never a TypeError later)."""
    if len(row) != len(_RECORD_TYPES):
        return False
    for value, (kind, nullable) in zip(row, _RECORD_TYPES, strict=True):
        if value is None:
            if not nullable:
                return False
        elif not _fits(value, kind):
            return False
    status, tokens = row[3], (row[8], row[9], row[11])
    return status in ("ok", "failed") and all(n >= 0 for n in tokens)


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One finished request as the ledger holds it.

    ``status`` is ``"ok"`` (``answer`` holds the object as JSON for ``/generate-object`` and
    the text for ``/generate-text``; ``raw_text`` the model's JSON text) or ``"failed"``
    (``error_code``/``error_message``). Tokens are those paid for the request (all attempts).
    Times are Unix seconds."""

    key: str
    run_id: str | None
    endpoint: str
    status: str
    answer: str | None
    raw_text: str | None
    error_code: str | None
    error_message: str | None
    input_tokens: int
    output_tokens: int
    session_id: str | None
    attempts: int
    started: float | None
    finished: float | None
    id: int

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def storable(text: str | None) -> Any:
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text
