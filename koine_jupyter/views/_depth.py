"""A cap on how deep a value is walked, for views that hand values to code that recurses
without a limit (the frame view: its own flattening, then pandas' formatting of cell values): a
deeply nested answer never raises ``RecursionError`` there.

:func:`cap_depth` checks without recursion (an explicit stack) and returns the value itself
when it is shallow enough — the usual case, no copy — else a copy (models as dicts of their
fields) whose too-deep parts are :data:`DEEPER`. The object view caps its own recursion
(:data:`.object.MAX_DEPTH`).
"""

from __future__ import annotations

from typing import Any, Final, cast

from pydantic import BaseModel

__all__ = ["DEEPER", "cap_depth"]

DEEPER: Final = "…"


def _children(value: Any) -> list[Any] | None:
    if isinstance(value, BaseModel):
        return [getattr(value, name, None) for name in type(value).model_fields]
    if isinstance(value, dict):
        return list(cast(dict[Any, Any], value).values())
    if isinstance(value, list | tuple):
        return list(cast("list[Any] | tuple[Any, ...]", value))
    return None


def _too_deep(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        kids = _children(node)
        if kids is None:
            continue
        if depth >= limit:
            return True
        stack.extend((kid, depth + 1) for kid in kids)
    return False


def _capped(value: Any, left: int) -> Any:
    if _children(value) is None:
        return value
    if left <= 0:
        return DEEPER
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {name: _capped(getattr(value, name, None), left - 1) for name in fields}
    if isinstance(value, dict):
        mapping = cast(dict[Any, Any], value)
        return {k: _capped(v, left - 1) for k, v in mapping.items()}
    items = cast("list[Any] | tuple[Any, ...]", value)
    return [_capped(v, left - 1) for v in items]


def cap_depth(value: Any, limit: int) -> Any:
    """``value`` itself when no container in it is nested deeper than ``limit`` levels, else a
    copy whose containers at that depth are replaced by :data:`DEEPER`."""
    if not _too_deep(value, limit):
        return value
    return _capped(value, limit)
