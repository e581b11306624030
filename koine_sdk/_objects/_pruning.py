"""Lenient validation: validate a JSON value, and where it fails, drop the failing parts and try
again. No I/O, no state; used by :mod:`._partial` (whole values) and :mod:`._reuse` (the parts of
a partial object that changed).

The rule, for one value: a failing field of an object is dropped (it becomes ``None``); a failing
item is dropped if it is the last (still growing) item of its list, otherwise the whole list is
dropped (and that failure moves up the same way); a failing root means nothing fits.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import TypeAdapter, ValidationError

__all__ = ["FAIL", "MAX_PRUNE_ROUNDS", "format_loc", "validate_pruned"]

MAX_PRUNE_ROUNDS = 8

FAIL: Any = object()
"""What :func:`validate_pruned` returns when the value itself must go."""

_REMOVE: Any = object()


def validate_pruned(adapter: TypeAdapter[Any], data: Any) -> Any:
    """``adapter.validate_python(data)``, dropping what fails (see the module docstring) for up
    to :data:`MAX_PRUNE_ROUNDS` rounds; :data:`FAIL` when nothing fits. Never raises."""
    for _ in range(MAX_PRUNE_ROUNDS):
        try:
            return adapter.validate_python(data)
        except ValidationError as exc:
            try:
                locs = [err["loc"] for err in exc.errors(include_url=False)]
            except Exception:
                return FAIL
            data = _prune(data, locs)
            if data is _REMOVE:
                return FAIL
        except Exception:
            return FAIL
    return FAIL


def format_loc(loc: tuple[int | str, ...]) -> str:
    """``("items", 2, "name")`` → ``items[2].name``; the empty location is ``(root)``."""
    if not loc:
        return "(root)"
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _prune(data: Any, locs: list[tuple[int | str, ...]]) -> Any:
    """``data`` without the values the error locations point at (copy-on-write: the input is
    never mutated). Returns ``_REMOVE`` when the root itself must go, or when nothing could be
    removed (so the caller stops retrying)."""
    trie: dict[Any, Any] = {}
    for loc in locs:
        path = _resolve(data, loc)
        if not path:
            return _REMOVE
        node: dict[Any, Any] = trie
        for key in path[:-1]:
            child: Any = node.get(key)
            if child is _REMOVE:
                break
            if child is None:
                child = node[key] = {}
            node = child
        else:
            node[path[-1]] = _REMOVE
    if not trie:
        return _REMOVE
    return _apply(data, trie)


def _resolve(data: Any, loc: tuple[int | str, ...]) -> list[Any]:
    """The concrete path (keys / indexes into ``data``) of the value to remove for one error.

    Location parts that are not keys of the data (union member tags such as ``int`` or
    ``PartialIngredient``, ``[key]`` markers) are skipped. A failing list item is removed only if
    it is the list's last item; otherwise the list itself is removed.
    """
    path: list[Any] = []
    parent_sizes: list[int | None] = []  # the length of each list on the path; None for dicts
    node: Any = data
    for part in loc:
        if isinstance(node, dict):
            as_dict = cast("dict[Any, Any]", node)
            if part in as_dict:
                parent_sizes.append(None)
                path.append(part)
                node = as_dict[part]
        elif isinstance(node, list) and isinstance(part, int):
            as_list = cast("list[Any]", node)
            if 0 <= part < len(as_list):
                parent_sizes.append(len(as_list))
                path.append(part)
                node = as_list[part]
    while path and (size := parent_sizes[-1]) is not None and path[-1] != size - 1:
        path.pop()
        parent_sizes.pop()
    return path


def _apply(node: Any, trie: dict[Any, Any]) -> Any:
    if isinstance(node, dict):
        new_dict = dict(cast("dict[Any, Any]", node))
        for key, sub in trie.items():
            if sub is _REMOVE:
                new_dict.pop(key, None)
            else:
                new_dict[key] = _apply(new_dict[key], sub)
        return new_dict
    if isinstance(node, list):
        new_list = list(cast("list[Any]", node))
        doomed: list[int] = []
        for key, sub in trie.items():
            if sub is _REMOVE:
                doomed.append(key)
            else:
                new_list[key] = _apply(new_list[key], sub)
        for key in sorted(doomed, reverse=True):
            del new_list[key]
        return new_list
    return node
