"""The one place that decides how a live view is drawn (compare ``tqdm.auto``), and the three
ways of drawing it.

Modes:

``widget``
    ipywidgets: finished blocks each get their own ``HTML`` widget, rendered once; only the
    growing last block and the status line are re-sent. Needs a frontend with a widget manager.
``markdown``
    a display handle (``display(..., display_id=True)`` then ``update``): works in every Jupyter
    frontend, re-sends the whole view on each (throttled) update.
``text``
    print what is new to stdout (terminal IPython, scripts).

:func:`choose_mode` picks one: an explicit preference (``KoineMagics.display``), else the
``KOINE_DISPLAY`` environment variable, else: no kernel → ``text``; a kernel whose frontend is
known to run a widget manager (JupyterLab / Notebook 7 through a Jupyter server, VS Code, or a
frontend that opened the ipywidgets control channel) → ``widget``; any other kernel (nbclient,
nbconvert, nbval, papermill) → ``markdown``.

Every surface starts from, and on success returns to, the same constant placeholder (an empty
``text/plain``), and a widget surface's ``text/plain`` is that same placeholder: what a saved
notebook records for the live view is therefore identical whether it was run in JupyterLab,
with nbclient or under nbval, and the answer itself is recorded once, as the cell's result.
"""

from __future__ import annotations

import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar, cast

from ._markdown import close_open_fence, text_to_html, to_html

__all__ = [
    "DISPLAY_CHOICES",
    "ENV_DISPLAY",
    "PLACEHOLDER",
    "Frame",
    "Mode",
    "Surface",
    "choose_mode",
    "make_surface",
]

Mode = Literal["widget", "markdown", "text"]
Kind = Literal["markdown", "html", "text"]
DISPLAY_CHOICES: Final = ("auto", "widget", "markdown", "text")
ENV_DISPLAY: Final = "KOINE_DISPLAY"
PLACEHOLDER: Final[dict[str, Any]] = {"text/plain": ""}
"""What a live view shows before it starts and after it succeeded (a constant: see module doc)."""


# -- choosing ---------------------------------------------------------------------------------


def _shell() -> Any:
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the jupyter extra
        return None
    return get_ipython()


def _has_kernel(shell: Any) -> bool:
    return shell is not None and getattr(shell, "kernel", None) is not None


def _widget_frontend(shell: Any) -> bool:
    """Positive evidence that a widget manager listens to this kernel."""
    widgets = sys.modules.get("ipywidgets.widgets.widget")
    if widgets is not None and getattr(widgets.Widget, "_control_comm", None) is not None:
        return True  # a frontend opened ipywidgets' control channel
    if os.environ.get("JPY_SESSION_NAME"):
        return True  # started by a Jupyter server for a notebook (JupyterLab, Notebook 7)
    # VS Code's notebook frontend puts the notebook's path in the namespace (VSCODE_PID is no
    # evidence: every process started from VS Code's terminal has it).
    return "__vsc_ipynb_file__" in getattr(shell, "user_ns", {})


def _widgets_importable() -> bool:
    try:
        import ipywidgets  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError:
        return False
    return True


def normalize_choice(value: str | None) -> str:
    """``value`` lower-cased and checked against :data:`DISPLAY_CHOICES` (``None`` → auto)."""
    choice = (value or "auto").strip().lower()
    if choice == "handle":
        choice = "markdown"
    if choice not in DISPLAY_CHOICES:
        raise ValueError(f"display must be one of {', '.join(DISPLAY_CHOICES)} (got {value!r})")
    return choice


def choose_mode(preference: str | None = None) -> Mode:
    """The display mode to use now (see the module docstring for the rules)."""
    choice = normalize_choice(preference)
    if choice == "auto":
        env = os.environ.get(ENV_DISPLAY)
        try:
            choice = normalize_choice(env)
        except ValueError:
            choice = "auto"
    shell = _shell()
    if choice == "auto":
        if not _has_kernel(shell):
            return "text"
        choice = "widget" if _widget_frontend(shell) else "markdown"
    if choice == "widget" and not (_has_kernel(shell) and _widgets_importable()):
        return "markdown" if _has_kernel(shell) else "text"
    return cast(Mode, choice)


# -- what a view draws ------------------------------------------------------------------------


@dataclass(slots=True)
class Frame:
    """One state of a live view.

    ``done`` holds finished blocks and only ever grows (a block, once there, never changes);
    ``tail`` is the part still changing. ``kind`` says what the blocks are: Markdown, HTML or
    plain text. ``fence`` is the code fence a Markdown tail ends inside (closed when drawn).
    ``text`` is the plain-text form for the text surface, which must only ever grow.
    """

    done: Sequence[str]
    tail: str
    status: str
    kind: Kind = "markdown"
    fence: str | None = None
    text: str = ""


def _display() -> Any:
    """IPython's ``display`` function (typed loosely: its stubs are partial)."""
    import IPython.display

    return cast(Any, IPython.display).display


def _status_html(status: str) -> str:
    import html

    return (
        f'<div style="font-size:85%;opacity:0.7;margin-top:0.3em">{html.escape(status)}</div>'
        if status
        else ""
    )


def _block_html(block: str, kind: Kind) -> str:
    if kind == "markdown":
        return to_html(block)
    if kind == "text":
        return text_to_html(block)
    return block


class Surface(ABC):
    """Where a live view is drawn. ``updates`` counts frontend updates; ``bytes_sent`` the
    characters of content they carried (not counting message envelopes)."""

    mode: Mode
    messages_per_update: int = 1  # frontend messages one update may cost, at most
    # Whether a successful view draws its complete last frame before it ends. Surfaces that
    # go back to their placeholder (the answer then shows as the cell's result) skip it: a
    # frame erased at once would only cost a message (the whole answer, for a display handle).
    draws_final_frame: bool = False

    def __init__(self) -> None:
        self.updates = 0
        self.bytes_sent = 0

    @abstractmethod
    def show(self, frame: Frame) -> None:
        """Draw ``frame``."""

    @abstractmethod
    def end(self, frame: Frame | None, status: str = "") -> None:
        """Stop drawing. ``frame=None``: success, go back to the placeholder (a widget keeps
        the final ``status`` line); a frame: keep it visible (failure, interrupt)."""


class TextSurface(Surface):
    """Print what is new to stdout."""

    mode: Mode = "text"
    draws_final_frame = True  # printed text stays: the rest must be printed

    def __init__(self) -> None:
        super().__init__()
        self._printed = ""

    def _write(self, text: str) -> None:
        if text.startswith(self._printed) and len(text) > len(self._printed):
            new = text[len(self._printed) :]
            sys.stdout.write(new)
            sys.stdout.flush()
            self._printed = text
            self.updates += 1
            self.bytes_sent += len(new)

    def show(self, frame: Frame) -> None:
        self._write(frame.text)

    def end(self, frame: Frame | None, status: str = "") -> None:
        if frame is not None:
            self._write(frame.text)
            if self._printed and not self._printed.endswith("\n"):
                sys.stdout.write("\n")
            if frame.status:
                sys.stdout.write(f"[{frame.status}]\n")
        elif self._printed and not self._printed.endswith("\n"):
            sys.stdout.write("\n")
        sys.stdout.flush()


class HandleSurface(Surface):
    """A display handle, updated with the whole view."""

    mode: Mode = "markdown"

    def __init__(self) -> None:
        super().__init__()
        self._handle: Any = _display()(dict(PLACEHOLDER), raw=True, display_id=True)
        self._last: dict[str, Any] | None = None

    def _bundle(self, frame: Frame) -> dict[str, Any]:
        if frame.kind == "html":
            body = "".join(frame.done) + frame.tail
            return {"text/html": body + _status_html(frame.status)}
        if frame.kind == "text":
            body = "".join(frame.done) + frame.tail
            return {"text/html": text_to_html(body) + _status_html(frame.status)}
        body = close_open_fence("".join(frame.done) + frame.tail, frame.fence)
        status = f"\n\n*{frame.status}*" if frame.status else ""
        sep = "" if not body or body.endswith("\n") else "\n"
        return {"text/markdown": body + sep + status}

    def _update(self, bundle: dict[str, Any]) -> None:
        if bundle == self._last:
            return
        self._last = bundle
        if self._handle is not None:  # None outside IPython: nothing to update
            self._handle.update(bundle, raw=True)
        self.updates += 1
        self.bytes_sent += sum(len(v) for v in bundle.values() if isinstance(v, str))

    def show(self, frame: Frame) -> None:
        self._update(self._bundle(frame))

    def end(self, frame: Frame | None, status: str = "") -> None:
        self._update(dict(PLACEHOLDER) if frame is None else self._bundle(frame))


# The HTML widget's own line height (28 px) spaces text more loosely than rendered output; with
# JupyterLab's rendered-HTML class (set once on the widget) and a normal line height the growing
# tail looks like the blocks above it and the final answer (no jump when the answer lands).
_LIVE_WRAP: Final = '<div style="line-height:normal">{}</div>'


class WidgetSurface(Surface):
    """ipywidgets, sending each piece of the answer about once.

    Finished Markdown blocks go out as ordinary display messages captured by an ``Output``
    widget (the frontend appends them: only the new HTML crosses the wire, never the whole
    answer again); the growing last block and the status line share one ``HTML`` widget,
    re-sent at each update. An update thus costs at most two messages, so this surface runs
    at half the view's message rate.
    """

    mode: Mode = "widget"
    messages_per_update = 2

    def __init__(self) -> None:
        super().__init__()
        import ipywidgets as widgets

        class _LiveBox(widgets.VBox):
            def __repr__(self) -> str:
                return str(PLACEHOLDER["text/plain"])

        layout = widgets.Layout()  # one layout model for the three widgets, not three
        self._out: Any = widgets.Output(layout=layout)
        self._live: Any = widgets.HTML("", layout=layout, _dom_classes=("jp-RenderedHTMLCommon",))
        self._box: Any = _LiveBox(children=[self._out, self._live], layout=layout)
        self._sent_blocks = 0
        _display()(self._box)
        # From here on this cell's display messages are captured by the Output widget (the
        # frontend starts capturing when msg_id changes: it cannot be set at creation).
        self._out.__enter__()
        self._capturing = True

    def _set(self, widget: Any, value: str) -> None:
        if widget.value != value:
            widget.value = value
            self.updates += 1
            self.bytes_sent += len(value)

    def _stop_capture(self, closing: bool = False) -> None:
        if self._capturing:
            self._capturing = False
            if not closing:  # a widget about to be closed captures nothing: no message then
                self._out.__exit__(None, None, None)

    def show(self, frame: Frame) -> None:
        kind = frame.kind
        if kind == "markdown":
            tail_html = to_html(close_open_fence(frame.tail, frame.fence)) if frame.tail else ""
        else:
            tail_html = _block_html(frame.tail, kind) if frame.tail else ""
        # The tail first: a block that just finished leaves the tail before it is appended
        # above (the other order shows it twice for a moment).
        self._set(self._live, _LIVE_WRAP.format(tail_html) + _status_html(frame.status))
        new = frame.done[self._sent_blocks :]
        if new:
            # Markdown goes out as Markdown: the frontend renders it exactly as it will render
            # the final answer (and the kernel spends no time on HTML).
            if kind == "markdown":
                body = "".join(new)
                bundle = {"text/markdown": body}
            else:
                body = "".join(_block_html(block, kind) for block in new)
                bundle = {"text/html": body}
            _display()(bundle, raw=True)
            self._sent_blocks = len(frame.done)
            self.updates += 1
            self.bytes_sent += len(body)

    def end(self, frame: Frame | None, status: str = "") -> None:
        if frame is not None:
            self.show(frame)
            self._stop_capture()
            return
        self._stop_capture(closing=True)
        self._box.children = [self._live]
        self._out.close()
        self._set(self._live, _status_html(status))


def make_surface(mode: Mode) -> Surface:
    """A new surface of ``mode`` (created here, it shows its placeholder at once)."""
    if mode == "widget":
        return WidgetSurface()
    if mode == "markdown":
        return HandleSurface()
    return TextSurface()


# -- feeding a view while waiting ---------------------------------------------------------------


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


R = TypeVar("R")

# -- the lifecycle shared by every live view ------------------------------------------------------

ViewState = Literal["new", "live", "done", "failed", "interrupted"]
TICK_INTERVAL: Final = 0.25  # seconds: how often a quiet stream still refreshes the view


def _format_seconds(seconds: float, live: bool) -> str:
    return f"{int(seconds)} s" if live else f"{seconds:.1f} s"


class LiveView(ABC):
    """A view that is drawn while a stream runs: ``start()``, then changes that ``poke()`` the
    throttle, then exactly one of ``done()``, ``failed(exc)``, ``interrupted()``.

    Args:
        display: ``auto`` (default), ``widget``, ``markdown`` or ``text`` (see
            :func:`choose_mode`).
        rate: at most this many frontend messages a second (default 20; a widget update may
            cost two messages, so widgets are redrawn at most ``rate / 2`` times a second).
        label: what the status line says first (e.g. the model and session name).
        status: show the status line at all.
    """

    def __init__(
        self,
        *,
        display: str | None = None,
        rate: float | None = None,
        label: str = "",
        status: bool = True,
    ) -> None:
        from ._throttle import DEFAULT_RATE

        normalize_choice(display)
        self.display = display
        self.rate = DEFAULT_RATE if rate is None else rate
        self.label = label
        self.show_status = status
        self.state: ViewState = "new"
        self.surface: Surface | None = None
        self._throttle: Any = None
        self._clock: Clock | None = None
        self._status_cache = ""
        self.error: BaseException | None = None

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

    def _status(self, final: str | None = None) -> str:
        if not self.show_status:
            return ""
        parts = [self.label] if self.label else []
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

    def _render(self) -> None:
        assert self.surface is not None
        status = self._status()
        self._status_cache = status
        self.surface.show(self._frame(status))

    def _drive(self, stream: Any, on_item: Callable[[Any], None], finish: Callable[[], R]) -> R:
        """Draw a sync SDK stream until it ends: each item goes to ``on_item``, a quiet spell
        refreshes the clock, then ``finish()`` reads the final result. A failure or Ctrl-C
        keeps what arrived on screen, marked, closes the stream and propagates."""
        if self.state == "new":
            self.start()
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
        """Note a change (redrawn when the throttle allows)."""
        if self._throttle is not None and self.state == "live":
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
        self.surface.end(self._frame(status) if self._has_content() else None, status)

    def interrupted(self) -> None:
        """Interrupt: what arrived stays visible, marked as interrupted."""
        if self.state != "live" or self.surface is None:
            return
        self.state = "interrupted"
        status = self._status("⏹ interrupted")
        self.surface.end(self._frame(status), status)
