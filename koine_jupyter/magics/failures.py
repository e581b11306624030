"""The cells that failed in this kernel: what ``%koine fix`` sends and ``{Err}``/``{Err[n]}`` fill.

A ``post_run_cell`` hook (:meth:`FailedCells.record`) keeps, for each cell whose code raised, its
execution count, its source and its traceback as plain text: ANSI colour codes stripped, each
part bounded (the head of the source, the tail of the traceback, where the error is named).
Secrets are masked when the text leaves the kernel (:func:`masked`).
"""

from __future__ import annotations

import re
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["ErrorTexts", "FailedCells", "Failure", "masked", "strip_ansi"]

MAX_SOURCE = 6_000
MAX_TRACEBACK = 6_000
MAX_LINE = 500
_KEEP = 20  # failed cells remembered

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes and other escape sequences."""
    return _ANSI.sub("", text)


def _line(line: str) -> str:
    if len(line) <= MAX_LINE:
        return line
    return f"{line[:MAX_LINE]}... ({len(line) - MAX_LINE} more characters cut)"


def _ends(text: str, limit: int) -> str:
    """``text`` with long lines cut, then its middle if still above ``limit`` (a traceback's
    first frames and its last, which names the error, are what matter)."""
    text = "\n".join(_line(line) for line in text.splitlines())
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    return f"{text[:head]}\n... ({len(text) - limit} characters cut)\n{text[-tail:]}"


def masked(text: str, secrets: list[str]) -> str:
    """``text`` with every secret (at least 4 characters) replaced by ``***``."""
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed cell: its execution count, source and traceback (plain, bounded)."""

    count: int
    source: str
    traceback: str


class FailedCells:
    """The last failed cells of the kernel, by execution count."""

    def __init__(self) -> None:
        self._cells: OrderedDict[int, Failure] = OrderedDict()

    def record(self, result: Any) -> None:
        """``post_run_cell``: keep the cell if its code raised."""
        error: BaseException | None = getattr(result, "error_in_exec", None)
        count = getattr(result, "execution_count", None)
        if error is None or not isinstance(count, int):
            return
        info = getattr(result, "info", None)
        source = str(getattr(info, "raw_cell", "") or "")
        text = "".join(traceback.format_exception(error))
        self._cells[count] = Failure(
            count,
            _ends(strip_ansi(source), MAX_SOURCE),
            _ends(strip_ansi(text).rstrip(), MAX_TRACEBACK),
        )
        while len(self._cells) > _KEEP:
            self._cells.popitem(last=False)

    def get(self, count: int | None = None) -> Failure | None:
        """Cell ``count``'s failure, or the last one (``None``: nothing failed, or not that)."""
        if count is None:
            return next(reversed(self._cells.values()), None)
        return self._cells.get(count)


class ErrorTexts:
    """``Err`` in a prompt: ``{Err}`` the last error's traceback, ``{Err[n]}`` cell n's."""

    def __init__(self, cells: FailedCells, secrets: list[str]) -> None:
        self._cells = cells
        self._secrets = secrets

    def __getitem__(self, count: int) -> str:
        failure = self._cells.get(count)
        if failure is None:
            raise KeyError(count)
        return masked(failure.traceback, self._secrets)

    def __koine_text__(self) -> str:
        failure = self._cells.get()
        if failure is None:
            raise LookupError("no cell has failed yet")
        return masked(failure.traceback, self._secrets)
