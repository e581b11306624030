"""Metadata for the cell's result: the provenance of a ``--schema`` answer (a Pydantic object or
a DataFrame, which have no ``_repr_mimebundle_`` of ours to carry it) joins the metadata of the
output that shows it.

The value is returned as usual — so ``r = %koine --schema Recipe ...`` still assigns it — and
tagged here: while the cell runs, the display hook's ``compute_format_data`` adds the tag's
metadata under ``"koine"`` when it formats *that* object. After the cell (``post_run_cell``)
the hook is restored and the tags are dropped, whether or not the value was shown.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ResultMetadata"]


class ResultMetadata:
    """The tags of one magic's results, for the cell being run."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._hook: Any = None

    def attach(self, shell: Any, value: Any, metadata: dict[str, Any]) -> None:
        """Add ``metadata`` (under ``"koine"``) to the output of ``value`` if this cell shows
        it as its result."""
        hook = getattr(shell, "displayhook", None)
        if value is None or hook is None or not hasattr(hook, "compute_format_data"):
            return
        self._pending[id(value)] = (value, metadata)  # the value is kept: its id stays its own
        if self._hook is not None:
            return
        original = hook.compute_format_data
        pending = self._pending

        def compute_format_data(result: Any) -> Any:
            data, md = original(result)
            entry = pending.get(id(result))
            if entry is not None and entry[0] is result:
                joined: dict[str, Any] = dict(md or {})
                joined["koine"] = entry[1]
                md = joined
            return data, md

        hook.compute_format_data = compute_format_data  # this instance, for this cell only
        self._hook = hook

    def after_cell(self) -> None:
        """The cell is over: drop the tags and give the display hook its own method back."""
        self._pending.clear()
        hook, self._hook = self._hook, None
        if hook is not None:
            try:
                del hook.compute_format_data
            except AttributeError:
                pass
