"""What the ledger hands back: typed values, each checked as it is read.

A ledger may come from elsewhere (shipped beside a notebook, edited by hand): a record whose
columns have the wrong types is skipped (a miss), never a ``TypeError`` further on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = [
    "ClaimResult",
    "LedgerRecord",
    "NearRecording",
    "RunSummary",
    "RunTotals",
    "decode_text",
    "encode_text",
    "record_of",
]


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One finished request as the ledger holds it.

    ``status`` is ``"ok"`` or ``"failed"`` (``error_code``/``error_message``). ``received`` is
    the answer as the gateway returned it, before any validation (the object's JSON for the
    object endpoints, the text for the text ones): every reuse validates it again. ``answer``
    is what 3.0.0a1 stored (for ``extract`` the validated object) and the text of text
    answers; ``raw_text`` the model's own JSON text. ``answered_by`` is the model that
    answered (when known). Tokens are those paid for the request (all attempts). Times are
    Unix seconds."""

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
    received: str | None = None
    answered_by: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def object_json(self) -> str | None:
        """The object to validate: as received, else (older records) as stored."""
        return self.received if self.received is not None else self.answer


@dataclass(frozen=True, slots=True)
class NearRecording:
    """The latest successful recording of a prompt (what a strict-replay miss compares)."""

    model: str | None
    session_in: str | None
    system_hash: str | None
    schema_hash: str | None
    allowed_tools: str | None


@dataclass(frozen=True, slots=True)
class RunTotals:
    """What a run committed: requests written and their tokens."""

    requests: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One run as the ledger holds it. ``params`` and ``stats`` are the caller's own mappings,
    stored and returned as they were given (``stats`` is ``None`` until the run ends)."""

    run_id: str
    kind: str
    status: str
    started: float
    ended: float | None
    rows: int | None
    params: Mapping[str, Any]
    stats: Mapping[str, Any] | None
    group: str | None = None
    committed: RunTotals | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The answer to :meth:`Ledger.claim`: the keys now claimed by the caller, and the others
    with the owner holding each."""

    granted: frozenset[str]
    held: Mapping[str, str] = field(default_factory=lambda: {})

    @property
    def all_granted(self) -> bool:
        return not self.held


def encode_text(value: str | None) -> str | bytes | None:
    """A str as SQLite can keep it: as it is, or (lone surrogates) its UTF-8 bytes with the
    surrogates passed through, stored as a BLOB and read back by :func:`decode_text`."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")
    return value


def decode_text(value: object) -> str | None:
    """A text column as written by :func:`encode_text` (``ValueError``: not a text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None
    raise ValueError(f"a {type(value).__name__} where a text belongs")


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a {type(value).__name__} where an integer belongs")
    return value


def _time(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"a {type(value).__name__} where a time belongs")
    return float(value)


def _required(value: str | None) -> str:
    if value is None:
        raise ValueError("a missing text")
    return value


RECORD_COLUMNS = (
    "key",
    "run_id",
    "endpoint",
    "status",
    "answer",
    "raw_text",
    "error_code",
    "error_message",
    "input_tokens",
    "output_tokens",
    "session_id",
    "attempts",
    "started",
    "finished",
    "id",
    "received",
    "answered_by",
)


def record_of(row: Sequence[object]) -> LedgerRecord | None:
    """The record of one row of :data:`RECORD_COLUMNS`, or ``None`` when a column's type is
    wrong (a tampered or damaged ledger: the request is a miss)."""
    try:
        t = [decode_text(row[i]) for i in (0, 1, 2, 3, 4, 5, 6, 7, 10)]
        status = _required(t[3])
        if status not in ("ok", "failed"):
            raise ValueError(f"status {status!r}")
        return LedgerRecord(
            key=_required(t[0]),
            run_id=t[1],
            endpoint=_required(t[2]),
            status=status,
            answer=t[4],
            raw_text=t[5],
            error_code=t[6],
            error_message=t[7],
            input_tokens=_int(row[8]),
            output_tokens=_int(row[9]),
            session_id=t[8],
            attempts=_int(row[11]),
            started=_time(row[12]),
            finished=_time(row[13]),
            id=_int(row[14]),
            received=decode_text(row[15]),
            answered_by=decode_text(row[16]),
        )
    except ValueError:
        return None


def mapping_of(text: object) -> Mapping[str, Any] | None:
    """A JSON object column (``None`` when absent or not an object)."""
    try:
        raw = decode_text(text)
        value: Any = json.loads(raw) if raw else None
    except ValueError:
        return None
    return cast("dict[str, Any]", value) if isinstance(value, dict) else None
