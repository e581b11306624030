"""A small bounded cache (least recently used entries go first), thread-safe."""

from __future__ import annotations

import collections
import threading
from typing import Any

__all__ = ["Bounded"]


class Bounded:
    """A mapping that forgets its least recently used entries beyond ``maxsize`` (thread-safe).

    Bounds what a notebook that re-defines a model a thousand times keeps alive: every version
    of the class, its partial model and its validators would otherwise stay cached for the life
    of the process."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._guard = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value for ``key`` (raises ``TypeError`` for an unhashable key)."""
        with self._guard:
            value = self._data.get(key, _ABSENT)
            if value is _ABSENT:
                return default
            self._data.move_to_end(key)
            return value

    def __setitem__(self, key: Any, value: Any) -> None:
        with self._guard:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._guard:
            self._data.clear()


_ABSENT: Any = object()
