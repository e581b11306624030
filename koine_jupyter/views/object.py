"""The object view: a structured answer drawn as it fills in.

Each field shows up as soon as its value arrives and lists grow item by item. The top level is
cut into blocks — one per field of a model, one per item of a list — so a widget view sends each
settled field or item once and re-sends only the one still being written.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pydantic import BaseModel

from ._live import LiveView, usage_of
from ._surfaces import Frame

if TYPE_CHECKING:
    from koine_sdk import KoineUsage, SyncStreamObjectResult

__all__ = ["ObjectView", "object_html", "object_leaves"]

T = TypeVar("T")

_ROW = (
    '<div style="display:flex;gap:0.8em;align-items:baseline">'
    '<div style="min-width:8em;font-weight:600">{label}</div>'
    '<div style="flex:1;min-width:0">{value}</div></div>'
)
_NEST = '<div style="border-left:2px solid rgba(128,128,128,0.3);padding-left:0.6em">{}</div>'


def _entries(value: Any) -> Iterator[tuple[str, Any]] | None:
    """(label, value) of a model's or dict's present entries, or ``None`` for other values."""
    if isinstance(value, BaseModel):
        model = value
        fields = type(model).model_fields
        return (
            (name, getattr(model, name))
            for name in fields
            if getattr(model, name, None) is not None
        )
    if isinstance(value, dict):
        mapping = cast(dict[Any, Any], value)
        return ((str(k), v) for k, v in mapping.items() if v is not None)
    return None


def _is_container(value: Any) -> bool:
    return isinstance(value, BaseModel | dict | list | tuple)


def _scalar_html(value: Any) -> str:
    if isinstance(value, str):
        text = html.escape(value)
        return f'<span style="white-space:pre-wrap">{text}</span>'
    if hasattr(value, "value") and not isinstance(value, int | float | bool):
        value = value.value  # an Enum member: its value reads better
    return f"<code>{html.escape(str(value))}</code>"


MAX_DEPTH = 24
"""Levels of nesting drawn; deeper values show as a placeholder (a hostile answer can nest
thousands of levels: drawing them would overflow the stack and no reader could use them)."""

_TOO_DEEP = '<code title="nested too deeply to draw">…</code>'


def object_html(value: Any, depth: int = 0) -> str:
    """A readable HTML tree of ``value`` (a model, partial model, list, dict or scalar); fields
    that have not arrived (``None``) are left out; below :data:`MAX_DEPTH` levels, ``…``."""
    if depth >= MAX_DEPTH and _is_container(value):
        return _TOO_DEEP
    entries = _entries(value)
    if entries is not None:
        return "".join(_row_html(label, v, depth) for label, v in entries)
    if isinstance(value, list | tuple):
        items = list(cast("list[Any] | tuple[Any, ...]", value))
        if not any(_is_container(item) for item in items):
            lis = "".join(f"<li>{_scalar_html(item)}</li>" for item in items if item is not None)
            return f'<ul style="margin:0;padding-left:1.2em">{lis}</ul>'
        return "".join(_row_html(f"[{i}]", item, depth) for i, item in enumerate(items))
    if value is None:
        return ""
    return _scalar_html(value)


def _row_html(label: str, value: Any, depth: int = 0) -> str:
    inner = object_html(value, depth + 1)
    if _is_container(value) and not isinstance(value, list | tuple):
        inner = _NEST.format(inner)
    return _ROW.format(label=html.escape(label), value=inner)


def object_blocks(value: Any) -> list[str]:
    """The top-level blocks of ``value``: one per present field, or one per list item."""
    entries = _entries(value)
    if entries is not None:
        return [_row_html(label, v) for label, v in entries]
    if isinstance(value, list | tuple):
        items = list(cast("list[Any] | tuple[Any, ...]", value))
        if not any(_is_container(item) for item in items):
            return [object_html(value)]
        return [_row_html(f"[{i}]", item) for i, item in enumerate(items)]
    return [object_html(value)] if value is not None else []


def _top_keys(value: Any) -> list[str]:
    entries = _entries(value)
    if entries is not None:
        return [label for label, _ in entries]
    if isinstance(value, list | tuple):
        items = cast("list[Any] | tuple[Any, ...]", value)
        if not any(_is_container(item) for item in items):
            return ["*"]
        return [f"[{i}]" for i in range(len(items))]
    return ["*"] if value is not None else []


def object_leaves(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """``(dotted.path[0], value)`` of every present leaf of ``value``, in order (a value nested
    deeper than :data:`MAX_DEPTH` is one leaf, shown as ``…``)."""
    if depth >= MAX_DEPTH and _is_container(value):
        return [(prefix or "value", "…")]
    entries = _entries(value)
    out: list[tuple[str, Any]] = []
    if entries is not None:
        for label, v in entries:
            out.extend(object_leaves(v, f"{prefix}.{label}" if prefix else label, depth + 1))
        return out
    if isinstance(value, list | tuple):
        for i, item in enumerate(cast("list[Any] | tuple[Any, ...]", value)):
            out.extend(object_leaves(item, f"{prefix}[{i}]", depth + 1))
        return out
    if value is None:
        return out
    return [(prefix or "value", value)]


def _leaf_line(path: str, value: Any) -> str:
    if hasattr(value, "value") and not isinstance(value, int | float | bool | str):
        value = value.value
    return f"{path}: {value}\n"


class ObjectView(LiveView, Generic[T]):
    """Draws an object stream (``koine.stream_object(...)``) as it fills in and returns the
    validated object::

        with koine.stream_object(prompt="...", schema=Recipe) as stream:
            recipe = ObjectView().consume(stream)

    In text mode each field is printed as ``path: value`` once it is complete.
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
        self.result: T | None = None
        self.usage: KoineUsage | None = None
        self._done_keys: list[str] = []
        self._done_blocks: list[str] = []
        self._lines: list[str] = []
        self._printed_paths: set[str] = set()
        self._raw_chars = 0
        self._final = False

    def update(self, partial: Any, raw_chars: int = 0) -> None:
        """Show a newer partial object (redrawn when the throttle allows)."""
        self.partial = partial
        self._raw_chars = raw_chars
        self.poke()

    def _settle(self, value: Any, final: bool) -> None:
        """Move settled top-level blocks (all but the last, or all when ``final``) to done,
        and, for text mode, settled leaves to the printed lines."""
        keys = _top_keys(value)
        if self.mode != "text":
            blocks = object_blocks(value)
            limit = len(keys) if final else max(len(keys) - 1, 0)
            for key, block in zip(keys[:limit], blocks[:limit], strict=True):
                if key not in self._done_keys:
                    self._done_keys.append(key)
                    self._done_blocks.append(block)
        else:
            leaves = object_leaves(value)
            limit = len(leaves) if final else max(len(leaves) - 1, 0)
            for path, leaf in leaves[:limit]:
                if path not in self._printed_paths:
                    self._printed_paths.add(path)
                    self._lines.append(_leaf_line(path, leaf))

    def _frame(self, status: str) -> Frame:
        value = self.partial
        self._settle(value, self._final)
        if self.mode == "text":
            return Frame((), "", status, "text", "".join(self._lines))
        keys = _top_keys(value)
        blocks = object_blocks(value)
        tail = "".join(b for k, b in zip(keys, blocks, strict=True) if k not in self._done_keys)
        return Frame(self._done_blocks, tail, status, "html")

    def _progress(self) -> str:
        value = self.partial
        keys = _top_keys(value)
        what = "items" if isinstance(value, list | tuple) else "fields"
        chars = f" · {self._raw_chars:,} chars" if self._raw_chars else ""
        return f"{len(keys)} {what}{chars}"

    def _has_content(self) -> bool:
        return bool(_top_keys(self.partial))

    def _summary(self) -> str:
        if self.usage is None:
            return self._progress()
        return f"{self.usage.total_tokens:,} tokens"

    def consume(self, stream: SyncStreamObjectResult[T]) -> T:
        """Draw ``stream`` until it ends and return the validated object.

        On a ``KoineError`` (for instance ``VALIDATION_ERROR``, whose ``raw_text`` holds the
        JSON) or ``KeyboardInterrupt`` the partial object stays drawn and the exception
        propagates; the newest partial is in :attr:`partial`.
        """

        def finish() -> T:
            result = stream.object()
            self.usage = usage_of(stream)
            return result

        result = self._drive(stream, lambda item: self.update(item, len(stream.raw_text)), finish)
        self.finish(result)
        return result

    def finish(self, result: T) -> None:
        """Show the validated object as the final state and end the view."""
        self.result = result
        self.partial = result
        self._final = True
        self.done()
