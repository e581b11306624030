"""A cap on how deep the views walk an object: a deeply nested answer (or partial answer) is
drawn down to :data:`MAX_DEPTH` levels with a placeholder below, never a ``RecursionError``.

:func:`cap_depth` checks without recursion (an explicit stack) and returns the value itself
when it is shallow enough — the usual case, no copy — else a copy (models as dicts of their
fields) whose too-deep parts are :data:`DEEPER`. Views then recurse on bounded input.
"""

from __future__ import annotations

from typing import Any, Final, cast

from pydantic import BaseModel

__all__ = ["DEEPER", "MAX_DEPTH", "cap_depth"]

MAX_DEPTH: Final = 32
DEEPER: Final = f"… (nested deeper than {MAX_DEPTH} levels: not shown)"


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


def cap_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """``value`` itself when no container in it is nested deeper than ``limit`` levels, else a
    copy whose containers at that depth are replaced by :data:`DEEPER`."""
    if not _too_deep(value, limit):
        return value
    return _capped(value, limit)
