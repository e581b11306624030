"""The one update throttle of every view: at most ``rate`` frontend updates per second,
whatever the token rate, and always a final update with the complete state."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["DEFAULT_RATE", "Throttle"]

DEFAULT_RATE = 20.0  # updates per second; Jupyter servers drop output above ~1,000 msg/s


class Throttle:
    """Call ``render`` at most ``rate`` times a second.

    ``poke()`` marks the state dirty and renders if the last render is old enough;
    ``flush()`` renders now if anything is dirty (call it at the end: the final render must
    show the complete state). ``renders`` counts the renders done.
    """

    __slots__ = ("_clock", "_dirty", "_interval", "_last", "_render", "renders")

    def __init__(
        self,
        render: Callable[[], None],
        rate: float = DEFAULT_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._render = render
        self._interval = 1.0 / rate
        self._clock = clock
        self._last = float("-inf")
        self._dirty = False
        self.renders = 0

    def poke(self) -> bool:
        """Note a change; render if due. Returns whether it rendered."""
        self._dirty = True
        now = self._clock()
        if now - self._last >= self._interval:
            self._do(now)
            return True
        return False

    def flush(self) -> bool:
        """Render now if there is an unrendered change. Returns whether it rendered."""
        if self._dirty:
            self._do(self._clock())
            return True
        return False

    def _do(self, now: float) -> None:
        self._dirty = False
        self._last = now
        self.renders += 1
        self._render()
