"""The progress display of bulk extraction: a widget in notebooks, a text line elsewhere.

Data flows one way: the extraction owns its counters and hands this view a *source* (a function
returning a :class:`ProgressSnapshot`); the view pulls a snapshot only when it renders, and it
renders through :class:`~koine_jupyter.views._throttle.Throttle`, so a thousand completions a
second cost a few renders, never a thousand.

It draws through the same surfaces as the answer views (:mod:`._surfaces`, chosen by the
package's one chooser, :func:`~koine_jupyter.views.choose_mode`, so ``KOINE_DISPLAY`` applies
here too), as a frame with a progress bar:

* ``widget``: an ``IntProgress`` bar and the progress line in a row, and (optionally) a preview
  of the DataFrame filling in below. Needs a frontend with a widget manager.
* ``markdown``: a display handle updated in place with the progress line and the preview: any
  Jupyter frontend (nbclient, nbconvert, papermill).
* ``text``: one line on ``stderr``, rewritten in place (``\\r``) on terminals, printed as
  separate lines (less often) when ``stderr`` is a file or a pipe.
* ``none``: nothing.

Like the other live views, the notebook renderings start from and, on success, return to the
constant placeholder (a widget keeps its bar and final line), so a saved notebook does not
record run-dependent timings; a run that was interrupted or stopped by its budget keeps its last
line and message.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from ._frontend import choose_mode, has_kernel, widgets_importable
from ._markdown import sanitize_html
from ._surfaces import Bar, BarStyle, Frame, Surface, TextSurface, make_surface
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
_LOG_QUIET = 1.0  # seconds: in logs, runs that finish this fast print only their last line


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
    """One line: ``extract 37/100 done · 2 failed · 61 left · 4.2 rows/s · ETA 15s · ...``
    (``prefix``: the verb that runs; ``""`` for none)."""
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
    return has_kernel()


def widgets_available() -> bool:
    """Whether a widget can be shown: a kernel, and ipywidgets importable."""
    return has_kernel() and widgets_importable()


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


def _final_style(snap: ProgressSnapshot) -> BarStyle:
    if snap.remaining:
        return "warning"
    if snap.failed:
        return "danger" if snap.done == 0 else "warning"
    return "success"


def _preview_html(value: Any) -> str:
    """A preview object as HTML: its notebook rendering (a DataFrame's is cut to
    ``display.max_rows``), else ``to_html()``, else escaped text."""
    for name in ("_repr_html_", "to_html"):
        method = getattr(value, name, None)
        if callable(method):
            rendered = method()
            if isinstance(rendered, str):
                return sanitize_html(rendered)  # the rows hold model output
    return f"<pre>{html.escape(str(value))}</pre>"


class _SurfaceProgress(ProgressView):
    """A progress view drawn on a surface: the bar and the line, and the preview below.

    ``verb`` (``extract``, ``classify``, ``generate``) names the run: it starts the line, or,
    with ``verb_on_bar``, labels the bar instead (a widget's line sits beside its bar)."""

    def __init__(
        self,
        source: Callable[[], ProgressSnapshot],
        surface: Surface,
        *,
        preview: Callable[[], Any] | None,
        rate: float,
        preview_rate: float,
        verb: str,
        verb_on_bar: bool = False,
        draw_now: bool = True,
    ) -> None:
        super().__init__(source)
        self.surface = surface
        self.verb = verb
        self._prefix = "" if verb_on_bar else verb
        self._bar_label = verb if verb_on_bar else ""
        self._preview_source = preview if surface.mode != "text" else None
        self._preview = ""
        self._throttle = Throttle(self._render, rate=rate)
        self._preview_throttle = Throttle(self._render_preview, rate=preview_rate)
        self._closed = False
        if draw_now:
            self._render()

    def _frame(self, message: str | None = None, final: bool = False) -> Frame:
        snap = self._source()
        line = format_line(snap, prefix=self._prefix)
        status = line if message is None else f"{line}\n{message}"
        style = _final_style(snap) if final else "info"
        bar = Bar(snap.finished, snap.total, style, self._bar_label)
        return Frame((), "" if final else self._preview, status, "html", bar=bar)

    def _render(self) -> None:
        self.surface.show(self._frame())

    def _render_preview(self) -> None:
        if self._preview_source is None:
            return
        try:
            self._preview = _preview_html(self._preview_source())
        except Exception:
            self._preview_source = None  # a preview is a nicety: never fail the run for it
            self._preview = ""
        self._render()

    def poke(self) -> None:
        if self._closed:
            return
        self._throttle.poke()
        if self._preview_source is not None:
            self._preview_throttle.poke()

    def finish(self, message: str | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        final = self._frame(message, final=True)
        if message is None and not self._source().remaining:
            # Success: the returned frame is shown by the cell itself; the view goes back to
            # its placeholder (a widget keeps the full bar and the final line).
            self.surface.end(None, final.status, final.bar)
        else:
            self.surface.end(final)  # stopped early: the line and the message stay

    @property
    def renders(self) -> int:
        return self._throttle.renders


class TextProgress(_SurfaceProgress):
    """One text line on a stream (``stderr`` by default)."""

    def __init__(
        self,
        source: Callable[[], ProgressSnapshot],
        *,
        verb: str = "extract",
        stream: TextIO | None = None,
        in_place: bool | None = None,
        rate: float | None = None,
    ) -> None:
        surface = TextSurface(status=stream, in_place=in_place)
        if rate is None:
            rate = TEXT_RATE_TTY if surface.in_place else TEXT_RATE_LOG
        self._started = time.monotonic()
        self._quiet = not surface.in_place
        super().__init__(
            source, surface, preview=None, rate=rate, preview_rate=rate, verb=verb, draw_now=False
        )

    def poke(self) -> None:
        if not self._quiet or time.monotonic() - self._started >= _LOG_QUIET:
            super().poke()


class WidgetProgress(_SurfaceProgress):
    """An ``IntProgress`` bar and the progress line, and an optional preview of the frame."""

    def __init__(
        self,
        source: Callable[[], ProgressSnapshot],
        *,
        verb: str = "extract",
        preview: Callable[[], Any] | None = None,
        rate: float = DEFAULT_RATE,
        preview_rate: float = PREVIEW_RATE,
    ) -> None:
        super().__init__(
            source,
            make_surface("widget", bar=True),
            preview=preview,
            rate=rate,
            preview_rate=preview_rate,
            verb=verb,
            verb_on_bar=True,
        )


class HandleProgress(_SurfaceProgress):
    """A display handle re-drawn with the progress line (and the preview below it)."""

    def __init__(
        self,
        source: Callable[[], ProgressSnapshot],
        *,
        verb: str = "extract",
        preview: Callable[[], Any] | None = None,
        rate: float = PREVIEW_RATE,
    ) -> None:
        super().__init__(
            source,
            make_surface("markdown"),
            preview=preview,
            rate=rate,
            preview_rate=rate,
            verb=verb,
        )


def make_progress(
    mode: ProgressMode,
    source: Callable[[], ProgressSnapshot],
    *,
    verb: str,
    preview: Callable[[], Any] | None = None,
    stream: TextIO | None = None,
) -> ProgressView:
    """The view for ``mode`` (``"auto"``: the package's chooser decides — a widget where a
    widget manager runs, a display handle in other kernels, a text line elsewhere).
    ``verb`` names the run on the line or the bar (the verb spec's name: ``extract``,
    ``classify``, ``generate``). ``preview`` (a function returning a DataFrame) is shown by the
    notebook renderings only."""
    if mode == "none":
        return ProgressView(source)
    chosen = choose_mode(None if mode == "auto" else mode)
    if chosen == "widget":
        try:
            return WidgetProgress(source, verb=verb, preview=preview)
        except Exception:
            chosen = "markdown" if has_kernel() else "text"
    if chosen == "markdown":
        try:
            return HandleProgress(source, verb=verb, preview=preview)
        except Exception:
            pass
    return TextProgress(source, verb=verb, stream=stream)
