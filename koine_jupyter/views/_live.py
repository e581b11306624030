"""The lifecycle shared by every live view: start, throttled redraws while a stream runs, then
exactly one ending (done, failed or interrupted). Where it is drawn is the surface's business
(:mod:`._surfaces`), chosen once by :func:`._frontend.choose_mode`."""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

from koine_sdk import KoineError, KoineUsage

from ._frontend import Mode, choose_mode, has_kernel, normalize_choice
from ._surfaces import Frame, Surface, make_surface

__all__ = [
    "TICK_INTERVAL",
    "Clock",
    "LiveView",
    "ViewState",
    "session_of",
    "stop_stream",
    "usage_of",
]

R = TypeVar("R")
ViewState = Literal["new", "live", "done", "failed", "interrupted"]
TICK_INTERVAL: Final = 0.25  # seconds: how often a quiet stream still refreshes the view
_NOTE_LIMIT: Final = 60  # characters of the note shown in the status line (all of it on hover)


def usage_of(stream: Any) -> KoineUsage | None:
    """The stream's usage, or ``None`` when it ended properly without a ``result`` event
    (``NO_USAGE``): its answer is complete, only the count is missing."""
    try:
        return stream.usage()
    except KoineError as exc:
        if exc.code == "NO_USAGE":
            return None
        raise


def session_of(stream: Any) -> str | None:
    """The stream's resumable session id, or ``None`` without a ``result`` event
    (``NO_SESSION``)."""
    try:
        return stream.session_id()
    except KoineError as exc:
        if exc.code == "NO_SESSION":
            return None
        raise


def stop_stream(stream: Any) -> None:
    """Stop a sync SDK stream after Ctrl-C: closing it cancels its reader on the SDK's loop and
    closes the connection (the gateway then stops its CLI)."""
    try:
        stream.close()
    except Exception:
        pass


class Clock:
    """Elapsed seconds since creation (monotonic)."""

    __slots__ = ("_now", "_start")

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._start = now()

    def elapsed(self) -> float:
        return self._now() - self._start


def _format_seconds(seconds: float, live: bool) -> str:
    return f"{int(seconds)} s" if live else f"{seconds:.1f} s"


class LiveView(ABC):
    """A view that is drawn while a stream runs: ``start()``, then changes that ``poke()`` the
    throttle, then exactly one of ``done()``, ``failed(exc)``, ``interrupted()``. As a context
    manager it starts on entry and, if the block leaves it live, ends it as the block ended.

    Args:
        display: ``auto`` (default), ``widget``, ``markdown`` or ``text`` (see
            :func:`~koine_jupyter.views.choose_mode`).
        rate: at most this many frontend messages a second (default 20; an update may cost
            two messages, so views are redrawn at most ``rate / 2`` times a second).
        label: what the status line says first (e.g. the model and session name).
        status: show the status line at all.
        note: a remark for the status line, after the label (e.g. which ``{references}`` of
            the prompt were filled): cut short there, whole on hover where the surface can; in
            a terminal, which draws no live status line, it is printed once on stderr.
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
        from ._throttle import DEFAULT_RATE

        normalize_choice(display)
        self.display = display
        self.rate = DEFAULT_RATE if rate is None else rate
        self.label = label
        self.note = note
        self.show_status = status
        self.state: ViewState = "new"
        self.surface: Surface | None = None
        self._throttle: Any = None
        self._clock: Clock | None = None
        self._status_cache = ""
        self.error: BaseException | None = None
        self.replayed = False  # the stream is answered from the ledger (said in the status)

    # what subclasses provide

    @abstractmethod
    def _frame(self, status: str) -> Frame:
        """The current state as a frame with this status line."""

    def _progress(self) -> str:
        """The live part of the status line (e.g. "1,234 chars")."""
        return ""

    def _summary(self) -> str:
        """The final part of the status line (e.g. the token usage)."""
        return ""

    def _has_content(self) -> bool:
        """Whether anything arrived (a failed view with nothing to show goes blank)."""
        return True

    # lifecycle

    @property
    def mode(self) -> Mode | None:
        """The display mode in use (``None`` before :meth:`start`)."""
        return self.surface.mode if self.surface is not None else None

    @property
    def renders(self) -> int:
        """How many times the view was redrawn (throttled)."""
        return 0 if self._throttle is None else int(self._throttle.renders)

    @property
    def elapsed(self) -> float:
        return 0.0 if self._clock is None else self._clock.elapsed()

    def start(self) -> None:
        """Choose the display mode and show the (empty) live view."""
        from ._throttle import Throttle

        if self.state != "new":
            raise RuntimeError("a view can be started once")
        self.state = "live"
        self._clock = Clock()
        self.surface = make_surface(choose_mode(self.display))
        # ``rate`` budgets frontend messages: a surface whose update costs two runs half as often.
        self._throttle = Throttle(self._render, rate=self.rate / self.surface.messages_per_update)
        if self.note and self.show_status and self.surface.mode == "text" and not has_kernel():
            # a terminal draws no live status line: the note is one line on stderr instead
            # (in a notebook, stderr would look like an error)
            sys.stderr.write(f"[{self.note}]\n")
            sys.stderr.flush()

    def __enter__(self) -> LiveView:
        if self.state == "new":
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.state != "live":
            return
        if exc is None:
            self.done()
        elif isinstance(exc, KeyboardInterrupt):
            self.interrupted()
        else:
            self.failed(exc)

    def _status(self, final: str | None = None) -> str:
        if not self.show_status:
            return ""
        parts = [self.label] if self.label else []
        if self.replayed:
            parts.append("replayed")
        if self.note:
            short = self.note
            if len(short) > _NOTE_LIMIT:
                short = short[: _NOTE_LIMIT - 1] + "…"
            parts.append(short)
        if final is None:
            progress = self._progress()
            if progress:
                parts.append(progress)
            parts.append(_format_seconds(self.elapsed, live=True))
            return "⏳ " + " · ".join(parts)
        summary = self._summary()
        if summary:
            parts.append(summary)
        parts.append(_format_seconds(self.elapsed, live=False))
        return f"{final} " + " · ".join(parts)

    def _with_hint(self, frame: Frame) -> Frame:
        if self.note and self.show_status and not frame.hint:
            frame.hint = self.note
        return frame

    def _render(self) -> None:
        assert self.surface is not None
        status = self._status()
        self._status_cache = status
        self.surface.show(self._with_hint(self._frame(status)))

    def _drive(self, stream: Any, on_item: Callable[[Any], None], finish: Callable[[], R]) -> R:
        """Draw a sync SDK stream until it ends: each item goes to ``on_item``, a quiet spell
        refreshes the clock, then ``finish()`` reads the final result. A failure or Ctrl-C
        keeps what arrived on screen, marked, closes the stream and propagates."""
        if self.state == "new":
            self.start()
        self.replayed = getattr(stream, "source", "live") == "replay"
        if self.replayed and self.show_status and self.mode == "text" and not has_kernel():
            # a terminal draws no live status line: one line on stderr says where it came from
            sys.stderr.write("[replayed from the ledger: nothing was sent]\n")
            sys.stderr.flush()
        try:
            for item in stream.iter_with_heartbeat(TICK_INTERVAL):
                if item is None:
                    self.tick()
                else:
                    on_item(item)
            return finish()
        except KeyboardInterrupt:
            stop_stream(stream)
            self.interrupted()
            raise
        except BaseException as exc:
            self.failed(exc)
            raise

    def poke(self) -> None:
        """Note a change (redrawn when the throttle allows). A replayed stream arrives whole:
        nothing is drawn until its end, which draws as a live answer's end does."""
        if self._throttle is not None and self.state == "live" and not self.replayed:
            self._throttle.poke()

    def tick(self) -> None:
        """The stream is quiet: draw a pending change, refresh the clock in the status line."""
        if self._throttle is None or self.state != "live":
            return
        if self._throttle.flush():
            return
        if self.show_status and self._status() != self._status_cache:
            self._throttle.poke()

    def _flush(self) -> None:
        if self._throttle is not None:
            self._throttle.flush()

    def done(self) -> None:
        """Success: the last frame is drawn complete, then the view returns to its placeholder
        (the answer is shown by whoever displays the result)."""
        if self.state != "live" or self.surface is None:
            return
        if self.surface.draws_final_frame:
            self._throttle.poke()
            self._flush()
        self.state = "done"
        self.surface.end(None, self._status("✓"))

    def failed(self, exc: BaseException) -> None:
        """Failure: what arrived stays visible, with the error code in the status line."""
        if self.state != "live" or self.surface is None:
            return
        self.error = exc
        self.state = "failed"
        code = getattr(exc, "code", type(exc).__name__)
        status = self._status(f"✗ failed ({code})")
        frame = self._with_hint(self._frame(status)) if self._has_content() else None
        self.surface.end(frame, status)

    def interrupted(self) -> None:
        """Interrupt: what arrived stays visible, marked as interrupted."""
        if self.state != "live" or self.surface is None:
            return
        self.state = "interrupted"
        status = self._status("⏹ interrupted")
        self.surface.end(self._with_hint(self._frame(status)), status)
