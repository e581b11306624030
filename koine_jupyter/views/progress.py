"""The progress display of bulk extraction: a widget in notebooks, a text line elsewhere.

Data flows one way: the extraction owns its counters and hands this view a *source* (a function
returning a :class:`ProgressSnapshot`); the view pulls a snapshot only when it renders, and it
renders through :class:`~koine_jupyter.views._throttle.Throttle`, so a thousand completions a
second cost a few renders, never a thousand.

Renderings (chosen by :func:`make_progress` through the package's one chooser,
:func:`~koine_jupyter.views._frontend.choose_mode`, so ``KOINE_DISPLAY`` applies here too):

* ``widget``: an ``ipywidgets.IntProgress`` and an HTML label, plus (optionally) a preview of
  the DataFrame filling in. Needs a frontend with a widget manager.
* ``markdown``: a display handle updated in place with the progress line and the preview: any
  Jupyter frontend (nbclient, nbconvert, papermill).
* ``text``: one line on ``stderr``, rewritten in place (``\\r``) on terminals, printed as
  separate lines (less often) when ``stderr`` is a file or a pipe.
* ``none``: nothing.

Like the other live views, the notebook renderings start from and, on success, return to the
constant empty placeholder, so a saved notebook does not record run-dependent timings; a run
that was interrupted or stopped by its budget keeps its last line and message.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO, cast

from ._frontend import PLACEHOLDER, choose_mode
from ._throttle import DEFAULT_RATE, Throttle

__all__ = [
    "HandleProgress",
    "ProgressMode",
    "ProgressSnapshot",
    "ProgressView",
    "TextProgress",
    "WidgetProgress",
    "format_line",
    "in_kernel",
    "make_progress",
    "widgets_available",
]

ProgressMode = Literal["auto", "widget", "markdown", "text", "none"]

PREVIEW_RATE = 2.0  # preview renders per second: building and drawing a frame costs more
TEXT_RATE_TTY = 8.0  # text renders per second when the line is rewritten in place
TEXT_RATE_LOG = 0.5  # text renders per second when every render is a new line (logs, pipes)


@dataclass(frozen=True, slots=True)
class ProgressSnapshot:
    """The state of one extraction, as the view shows it.

    ``done`` counts rows that succeeded (cache hits included), ``failed`` rows that got an
    error; ``requested`` counts rows finished by a request in this run (for the rate).
    """

    total: int
    done: int
    failed: int
    cached: int
    in_flight: int
    requested: int
    elapsed: float
    input_tokens: int
    output_tokens: int
    concurrency: int
    limit: int
    replicas_alive: int = 1
    replicas: int = 1
    note: str | None = None

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.finished)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def rate(self) -> float | None:
        """Rows per second finished by requests (``None`` until there is a measurement)."""
        if self.requested <= 0 or self.elapsed <= 0:
            return None
        return self.requested / self.elapsed

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (``None`` when unknown)."""
        rate = self.rate
        if self.remaining == 0:
            return 0.0
        if rate is None or rate <= 0:
            return None
        return self.remaining / rate


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_line(snap: ProgressSnapshot, *, prefix: str = "extract") -> str:
    """One line: ``extract 37/100 done · 2 failed · 61 left · 4.2 rows/s · ETA 15s · ...``."""
    head = f"{snap.done}/{snap.total} done"
    parts = [f"{prefix} {head}" if prefix else head]
    if snap.failed:
        parts.append(f"{snap.failed} failed")
    parts.append(f"{snap.remaining} left")
    if snap.cached:
        parts.append(f"{snap.cached} cached")
    rate = snap.rate
    parts.append(f"{rate:.1f} rows/s" if rate is not None else "- rows/s")
    parts.append(
        f"ETA {_duration(snap.eta)}" if snap.remaining else f"in {_duration(snap.elapsed)}"
    )
    parts.append(f"{snap.tokens:,} tokens")
    if snap.remaining:
        parts.append(f"concurrency {snap.concurrency}/{snap.limit}")
    if snap.replicas > 1:
        parts.append(f"{snap.replicas_alive}/{snap.replicas} gateways")
    if snap.note:
        parts.append(snap.note)
    return " · ".join(parts)


def in_kernel() -> bool:
    """Whether this runs in a Jupyter kernel (not a terminal IPython, not a script)."""
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return False
    try:
        get_ipython: Callable[[], Any] = ipython_mod.get_ipython
        shell = get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def widgets_available() -> bool:
    """Whether a widget can be shown: a kernel, and ipywidgets importable."""
    if not in_kernel():
        return False
    try:
        import ipywidgets  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        return False
    return True


class ProgressView:
    """The no-op view (``progress=False``); the base of the others.

    The owner calls :meth:`poke` after every change (cheap: renders only when due) and
    :meth:`finish` once at the end with an optional closing message.
    """

    def __init__(self, source: Callable[[], ProgressSnapshot]) -> None:
        self._source = source

    def poke(self) -> None:
        """Something changed; render if due."""

    def finish(self, message: str | None = None) -> None:
        """Render the final state (and ``message``, if any); stop updating."""

    @property
    def renders(self) -> int:
        return 0


class TextProgress(ProgressView):
    """One text line on a stream (``stderr`` by default)."""

    def __init__(
        self,
        source: Callable[[], ProgressSnapshot],
        *,
        stream: TextIO | None = None,
        in_place: bool | None = None,
        rate: float | None = None,
    ) -> None:
        super().__init__(source)
        self._stream = stream if stream is not None else sys.stderr
        if in_place is None:
            isatty = getattr(self._stream, "isatty", None)
            try:
                in_place = bool(isatty()) if callable(isatty) else False
            except Exception:
                in_place = False
            in_place = in_place or in_kernel()
        self._in_place = in_place
        if rate is None:
            rate = TEXT_RATE_TTY if in_place else TEXT_RATE_LOG
        self._throttle = Throttle(self._render, rate=rate)
        self._width = 0
        self._closed = False
        self._started = time.monotonic()

    def _write(self, line: str, final: bool = False) -> None:
        if self._in_place:
            pad = " " * max(0, self._width - len(line))
            self._width = 0 if final else len(line)
            text = f"\r{line}{pad}" + ("\n" if final else "")
        else:
            text = line + "\n"
        try:
            self._stream.write(text)
            self._stream.flush()
        except Exception:
            pass  # a closed or broken stream must not break the extraction

    def _render(self) -> None:
        self._write(format_line(self._source()))

    def poke(self) -> None:
        if self._closed:
            return
        if not self._in_place and time.monotonic() - self._started < 1.0:
            return  # in logs, skip the noise of runs that finish within a second
        self._throttle.poke()

    def finish(self, message: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._write(format_line(self._source()), final=True)
        if message:
            self._write(message, final=True)

    @property
    def renders(self) -> int:
        return self._throttle.renders


class WidgetProgress(ProgressView):
    """``IntProgress`` + HTML label, and an optional preview of the frame (display handle)."""

    def __init__(
        self,
        source: Callable[[], ProgressSnapshot],
        *,
        preview: Callable[[], Any] | None = None,
        rate: float = DEFAULT_RATE,
        preview_rate: float = PREVIEW_RATE,
    ) -> None:
        super().__init__(source)
        import ipywidgets as widgets
        from IPython import display as ipy_display

        display = cast("Callable[..., Any]", getattr(ipy_display, "display"))  # noqa: B009

        snap = source()
        self._bar = widgets.IntProgress(
            value=0, min=0, max=max(1, snap.total), description="extract", bar_style="info"
        )
        self._label = widgets.HTML(value=html.escape(format_line(snap, prefix="")))
        self._box = widgets.HBox([self._bar, self._label])
        bundle = cast("dict[str, Any]", self._box._repr_mimebundle_())  # pyright: ignore[reportUnknownMemberType, reportPrivateUsage]
        display({**bundle, **PLACEHOLDER}, raw=True)
        self._preview_source = preview
        self._preview_handle: Any = None
        if preview is not None:
            self._preview_handle = display(dict(PLACEHOLDER), raw=True, display_id=True)
        self._throttle = Throttle(self._render, rate=rate)
        self._preview_throttle = Throttle(self._render_preview, rate=preview_rate)
        self._closed = False

    def _render(self) -> None:
        snap = self._source()
        self._bar.max = max(1, snap.total)
        self._bar.value = snap.finished
        self._label.value = html.escape(format_line(snap, prefix=""))

    def _render_preview(self) -> None:
        if self._preview_handle is None or self._preview_source is None:
            return
        try:
            self._preview_handle.update(self._preview_source())
        except Exception:
            self._preview_handle = None  # a preview is a nicety: never fail the run for it

    def poke(self) -> None:
        if self._closed:
            return
        self._throttle.poke()
        self._preview_throttle.poke()

    def finish(self, message: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        self._render()
        snap = self._source()
        if snap.remaining:
            self._bar.bar_style = "warning"
        elif snap.failed:
            self._bar.bar_style = "danger" if snap.done == 0 else "warning"
        else:
            self._bar.bar_style = "success"
        if message:
            self._label.value = html.escape(format_line(snap, prefix="")) + (
                "<br>" + html.escape(message)
            )
        if self._preview_handle is not None:
            # The returned frame is shown by the cell itself: drop the stale preview.
            try:
                self._preview_handle.update(dict(PLACEHOLDER), raw=True)
            except Exception:
                pass

    @property
    def renders(self) -> int:
        return self._throttle.renders


class HandleProgress(ProgressView):
    """A display handle re-drawn with the progress line (and the preview below it)."""

    def __init__(
        self,
        source: Callable[[], ProgressSnapshot],
        *,
        preview: Callable[[], Any] | None = None,
        rate: float = PREVIEW_RATE,
    ) -> None:
        super().__init__(source)
        from IPython import display as ipy_display

        display = cast("Callable[..., Any]", getattr(ipy_display, "display"))  # noqa: B009
        self._handle: Any = display(dict(PLACEHOLDER), raw=True, display_id=True)
        self._preview_source = preview
        self._throttle = Throttle(self._render, rate=rate)
        self._closed = False

    def _bundle(self, message: str | None = None, with_preview: bool = True) -> dict[str, Any]:
        line = format_line(self._source())
        text = line if message is None else f"{line}\n{message}"
        body = f"<pre>{html.escape(text)}</pre>"
        if with_preview and self._preview_source is not None:
            try:
                frame = self._preview_source()
                to_html = getattr(frame, "to_html", None)
                if callable(to_html):
                    body += str(to_html())
            except Exception:
                self._preview_source = None
        return {"text/plain": text, "text/html": body}

    def _render(self) -> None:
        if self._handle is not None:
            self._handle.update(self._bundle(), raw=True)

    def poke(self) -> None:
        if not self._closed:
            self._throttle.poke()

    def finish(self, message: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._handle is None:
            return
        snap = self._source()
        if message is None and not snap.remaining:
            self._handle.update(dict(PLACEHOLDER), raw=True)
        else:
            self._handle.update(self._bundle(message, with_preview=False), raw=True)

    @property
    def renders(self) -> int:
        return self._throttle.renders


def make_progress(
    mode: ProgressMode,
    source: Callable[[], ProgressSnapshot],
    *,
    preview: Callable[[], Any] | None = None,
    stream: TextIO | None = None,
) -> ProgressView:
    """The view for ``mode`` (``"auto"``: the package's chooser decides — a widget where a
    widget manager runs, a display handle in other kernels, a text line elsewhere).
    ``preview`` (a function returning a DataFrame) is shown by the notebook renderings only."""
    if mode == "none":
        return ProgressView(source)
    chosen = choose_mode(None if mode == "auto" else mode)
    if chosen == "widget":
        try:
            return WidgetProgress(source, preview=preview)
        except Exception:
            chosen = "markdown" if in_kernel() else "text"
    if chosen == "markdown":
        try:
            return HandleProgress(source, preview=preview)
        except Exception:
            pass
    return TextProgress(source, stream=stream)
