"""Named conversations of one kernel (``%%koine --session NAME``).

A cell without ``--session`` is a fresh, stateless request. A named session remembers the
gateway's resumable session id of its last successful answer; the next cell with the same name
continues from it, ``--new`` starts it over. Nothing is stored on disk: a restarted kernel starts
every session fresh, which keeps a notebook re-run from the top reproducible.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from koine_sdk import KoineUsage

__all__ = ["SessionRecord", "SessionStore"]


@dataclass(slots=True)
class SessionRecord:
    """One named conversation: its resumable id, turns taken and tokens used so far."""

    name: str
    session_id: str
    turns: int = 0
    total_tokens: int = 0
    model: str | None = None


class SessionStore:
    """The named sessions of a kernel; ``%koine sessions`` shows it."""

    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}

    def __iter__(self) -> Iterator[SessionRecord]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, name: object) -> bool:
        return name in self._records

    def get(self, name: str) -> SessionRecord | None:
        return self._records.get(name)

    def resume_id(self, name: str | None, *, new: bool = False) -> str | None:
        """The id to send for ``--session name`` (``None``: start a new conversation)."""
        if name is None or new:
            return None
        record = self._records.get(name)
        return record.session_id if record is not None else None

    def record(
        self,
        name: str,
        session_id: str,
        usage: KoineUsage | None,
        model: str | None,
        *,
        new: bool = False,
    ) -> SessionRecord:
        """Note a successful turn of ``name`` (``new``: it started the session over)."""
        old = None if new else self._records.get(name)
        record = SessionRecord(
            name,
            session_id,
            turns=(old.turns if old else 0) + 1,
            total_tokens=(old.total_tokens if old else 0) + (usage.total_tokens if usage else 0),
            model=model if model is not None else (old.model if old else None),
        )
        self._records[name] = record
        return record

    def only(self, name: str) -> SessionStore:
        """A store holding just the session ``name`` (empty if there is none), to show it."""
        store = SessionStore()
        record = self._records.get(name)
        if record is not None:
            store._records[name] = record
        return store

    def clear(self, name: str | None = None) -> int:
        """Forget one session (or all); returns how many were forgotten."""
        if name is None:
            count = len(self._records)
            self._records.clear()
            return count
        return 1 if self._records.pop(name, None) is not None else 0

    # display

    def _rows(self) -> list[tuple[str, str, str, str]]:
        return [
            (r.name, str(r.turns), f"{r.total_tokens:,}", r.model or "default")
            for r in self._records.values()
        ]

    def __repr__(self) -> str:
        return f"SessionStore({', '.join(self._records)})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        if not self._records:
            p.text("No named sessions (use %%koine --session NAME).")
            return
        lines = ["name  turns  tokens  model"]
        lines += ["  ".join(row) for row in self._rows()]
        p.text("\n".join(lines))

    def _repr_html_(self) -> str:
        if not self._records:
            return "<p>No named sessions (use <code>%%koine --session NAME</code>).</p>"
        head = "".join(f"<th>{h}</th>" for h in ("name", "turns", "tokens", "model"))
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self._rows()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
