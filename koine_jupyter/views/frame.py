"""The frame view: a list answer as a pandas DataFrame that grows row by row while it streams.

Each item becomes a row; nested models and dicts are flattened into dotted column names
(``address.city``); lists stay as cell values; types are kept (ints stay ints, dates become
datetimes). pandas is imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from pydantic import BaseModel

from ._depth import cap_depth
from ._live import LiveView, usage_of
from ._markdown import sanitize_html
from ._surfaces import Frame
from .object import MAX_DEPTH

if TYPE_CHECKING:
    from koine_sdk import KoineUsage, SyncStreamObjectResult

__all__ = ["FrameView", "flatten_record", "to_dataframe"]


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: getattr(value, name) for name in type(value).model_fields}
    return value


def flatten_record(value: Any, sep: str = ".") -> dict[str, Any]:
    """One row: the fields of a model (or keys of a dict), nested ones joined with ``sep``.

    A scalar becomes ``{"value": scalar}``. Nesting deeper than :data:`.object.MAX_DEPTH`
    levels becomes ``…`` (a hostile answer can nest thousands of levels)."""
    value = _plain(cap_depth(value, MAX_DEPTH))
    if not isinstance(value, dict):
        return {"value": value}
    out: dict[str, Any] = {}

    def walk(node: dict[Any, Any], prefix: str) -> None:
        for key, item in node.items():
            name = f"{prefix}{sep}{key}" if prefix else str(key)
            item = _plain(item)
            if isinstance(item, dict) and item:
                walk(cast(dict[Any, Any], item), name)
            else:
                out[name] = item

    walk(cast(dict[Any, Any], value), "")
    return out


def _rows(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(cast("Sequence[Any]", value))
    return [] if value is None else [value]


def to_dataframe(value: Any, sep: str = ".") -> Any:
    """A DataFrame with one row per item of ``value`` (a list of models or dicts; a single
    model gives one row). Returns a ``pandas.DataFrame``."""
    import pandas

    pd: Any = pandas
    records = [flatten_record(item, sep) for item in _rows(value)]
    return pd.DataFrame.from_records(records) if records else pd.DataFrame()


class FrameView(LiveView):
    """Draws a list stream as a growing DataFrame and returns the final DataFrame::

        with koine.stream_object(prompt="...", schema=list[Person]) as stream:
            df = FrameView().consume(stream)

    A row appears when its item is complete (the next one started, or the stream ended).
    In text mode each complete row is printed as one line.
    """

    def __init__(
        self,
        *,
        display: str | None = None,
        rate: float | None = None,
        label: str = "",
        status: bool = True,
        note: str = "",
    ) -> None:
        super().__init__(display=display, rate=rate, label=label, status=status, note=note)
        self.partial: Any = None
        self.result: Any = None
        self.dataframe: Any = None
        self.usage: KoineUsage | None = None
        self._final = False
        self._printed_rows = 0

    def update(self, partial: Any) -> None:
        """Show a newer partial list (redrawn when the throttle allows)."""
        self.partial = partial
        self.poke()

    def _settled(self) -> list[Any]:
        rows = _rows(self.partial)
        return rows if self._final else rows[:-1]

    def _frame(self, status: str) -> Frame:
        rows = self._settled()
        if self.mode == "text":
            lines = [
                ", ".join(f"{k}={v}" for k, v in flatten_record(row).items()) + "\n" for row in rows
            ]
            return Frame((), "", status, "text", "".join(lines))
        if not rows:
            return Frame((), "", status, "html")
        df = self.dataframe if self._final else to_dataframe(rows)
        # pandas escapes the cells; the table still passes our allowlist, as every output does
        return Frame((), sanitize_html(str(df._repr_html_())), status, "html")

    def _progress(self) -> str:
        return f"{len(self._settled())} rows"

    def _has_content(self) -> bool:
        return bool(_rows(self.partial))

    def _summary(self) -> str:
        rows = f"{len(self._settled())} rows"
        return rows if self.usage is None else f"{rows} · {self.usage.total_tokens:,} tokens"

    def consume(self, stream: SyncStreamObjectResult[Any]) -> Any:
        """Draw ``stream`` until it ends; return the validated items as a DataFrame (the
        validated object itself is in :attr:`result`)."""

        def finish() -> Any:
            result = stream.object()
            self.usage = usage_of(stream)
            return result

        result = self._drive(stream, self.update, finish)
        return self.finish(result)

    def finish(self, result: Any) -> Any:
        """Show the validated result as the final table, end the view, return the DataFrame."""
        self.result = result
        self.partial = result
        self.dataframe = to_dataframe(result)
        self._final = True
        self.done()
        return self.dataframe
