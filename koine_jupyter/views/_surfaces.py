"""Where a live view is drawn: three surfaces, one per display mode, all drawing a :class:`Frame`.

A frame is finished blocks (which only ever grow: a block, once there, never changes), the tail
still changing, a status line, and optionally a progress bar. Every surface sends each finished
block once and re-sends only the tail and the status, so what crosses the wire grows with the
answer, not with its square.

Saved notebooks: nbval compares each display as it was *first* sent (it ignores updates), and
nbclient saves each display's *last* state. So every display a surface makes starts and, on
success, ends in the same state: the first one as :data:`PLACEHOLDER` (an empty
``text/plain``; a widget's ``text/plain`` is that same placeholder), any further one (the
display-handle surface opens one per batch of finished blocks) as :data:`EMPTY`, which renders
nothing and gives nbval nothing to compare — their number depends on timing, which must not
matter. The answer itself is recorded once, as the cell's result.
"""

from __future__ import annotations

import html
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TextIO

from ._frontend import EMPTY, PLACEHOLDER, Mode, display, has_kernel
from ._markdown import text_to_html, to_html

__all__ = [
    "Bar",
    "Frame",
    "HandleSurface",
    "Kind",
    "Surface",
    "TextSurface",
    "WidgetSurface",
    "make_surface",
]

Kind = Literal["markdown", "html", "text"]
BarStyle = Literal["info", "success", "warning", "danger"]


class Bar(NamedTuple):
    """A progress bar: ``value`` of ``total``, coloured by ``style``, named by ``label``."""

    value: int
    total: int
    style: BarStyle = "info"
    label: str = ""


@dataclass(slots=True)
class Frame:
    """One state of a live view.

    ``done`` holds finished blocks and only ever grows; ``tail`` is the part still changing.
    Both are ready to draw: Markdown (with any open code fence closed), HTML or plain text, as
    ``kind`` says. ``text`` is the plain-text form for the text surface, which must only ever
    grow. ``bar``: a progress bar, drawn with the status line beside it. ``hint``: more about
    the status line, shown on hover where the surface can.
    """

    done: Sequence[str]
    tail: str
    status: str
    kind: Kind = "markdown"
    text: str = ""
    bar: Bar | None = None
    hint: str = ""


def _status_html(status: str, hint: str = "") -> str:
    if not status:
        return ""
    title = f' title="{html.escape(hint)}"' if hint else ""
    return (
        f'<div style="font-size:85%;opacity:0.7;margin-top:0.3em"{title}>'
        f"{html.escape(status)}</div>"
    )


def _block_html(block: str, kind: Kind) -> str:
    if kind == "markdown":
        return to_html(block)
    if kind == "text":
        return text_to_html(block)
    return block


def _blocks_bundle(blocks: Sequence[str], kind: Kind) -> tuple[dict[str, Any], int]:
    """The display data of finished blocks, and its size. Markdown is rendered here, by the
    one renderer of untrusted text (:func:`to_html`), never published as raw Markdown."""
    body = "".join(_block_html(block, kind) for block in blocks)
    return {"text/html": body}, len(body)


def _size(bundle: dict[str, Any]) -> int:
    return sum(len(v) for v in bundle.values() if isinstance(v, str))


class Surface(ABC):
    """Where a live view is drawn. ``updates`` counts frontend updates; ``bytes_sent`` the
    characters of content they carried (not counting message envelopes)."""

    mode: Mode
    messages_per_update: int = 1  # frontend messages one update costs, about
    # Whether a successful view draws its complete last frame before it ends. Surfaces that
    # go back to their placeholder (the answer then shows as the cell's result) skip it: a
    # frame erased at once would only cost messages.
    draws_final_frame: bool = False

    def __init__(self) -> None:
        self.updates = 0
        self.bytes_sent = 0

    @abstractmethod
    def show(self, frame: Frame) -> None:
        """Draw ``frame``."""

    @abstractmethod
    def end(self, frame: Frame | None, status: str = "", bar: Bar | None = None) -> None:
        """Stop drawing. ``frame=None``: success, go back to the placeholder (a widget keeps
        the final ``status`` line and ``bar``; a text surface prints a final progress line);
        a frame: keep it visible (failure, interrupt)."""


class TextSurface(Surface):
    """Print what is new to stdout; a progress line (a frame with a bar) goes to ``status``
    (stderr by default), rewritten in place on terminals and in kernels, else one line each."""

    mode: Mode = "text"
    draws_final_frame = True  # printed text stays: the rest must be printed

    def __init__(self, *, status: TextIO | None = None, in_place: bool | None = None) -> None:
        super().__init__()
        self._printed = ""
        self.status_stream = status if status is not None else sys.stderr
        if in_place is None:
            isatty = getattr(self.status_stream, "isatty", None)
            try:
                in_place = bool(isatty()) if callable(isatty) else False
            except Exception:
                in_place = False
            in_place = in_place or has_kernel()
        self.in_place = in_place
        self._width = 0

    def _write(self, text: str) -> None:
        if text.startswith(self._printed) and len(text) > len(self._printed):
            new = text[len(self._printed) :]
            sys.stdout.write(new)
            sys.stdout.flush()
            self._printed = text
            self.updates += 1
            self.bytes_sent += len(new)

    def _line(self, status: str, final: bool = False) -> None:
        first, *more = status.split("\n")
        if self.in_place:
            pad = " " * max(0, self._width - len(first))
            self._width = 0 if final else len(first)
            out = f"\r{first}{pad}" + ("\n" if final else "")
        else:
            out = first + "\n"
        if final:
            out += "".join(line + "\n" for line in more)
        try:
            self.status_stream.write(out)
            self.status_stream.flush()
        except Exception:
            return  # a closed or broken stream must not break the work it reports on
        self.updates += 1
        self.bytes_sent += len(out)

    def show(self, frame: Frame) -> None:
        self._write(frame.text)
        if frame.bar is not None:
            self._line(frame.status)

    def end(self, frame: Frame | None, status: str = "", bar: Bar | None = None) -> None:
        if frame is not None and frame.bar is not None:
            self._line(frame.status, final=True)
            return
        if frame is None and bar is not None:
            self._line(status, final=True)
            return
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
    """Display handles. The first display shows the tail and the status line; when blocks
    finish, the display holding the tail is given those blocks for good and a new display below
    it takes over the tail. Each block is thus sent once more than it was seen growing, and an
    update re-sends only the tail: about one message per update, three when blocks finished."""

    mode: Mode = "markdown"
    messages_per_update = 2

    def __init__(self) -> None:
        super().__init__()
        self._handles: list[Any] = []
        self._shown: list[dict[str, Any]] = []  # what each display shows now
        self._open(PLACEHOLDER)
        self._sent_blocks = 0

    def _open(self, bundle: dict[str, Any]) -> None:
        self._handles.append(display(dict(bundle), raw=True, display_id=True))
        self._shown.append(bundle)

    def _update(self, i: int, bundle: dict[str, Any], size: int | None = None) -> None:
        if bundle == self._shown[i]:
            return
        handle = self._handles[i]
        if handle is not None:  # None outside IPython: nothing to update
            handle.update(bundle, raw=True)
        self._shown[i] = bundle
        self.updates += 1
        self.bytes_sent += _size(bundle) if size is None else size

    def _tail_bundle(self, frame: Frame) -> dict[str, Any]:
        if frame.bar is not None:  # a progress line first, then what goes with it
            return {
                "text/plain": frame.status,
                "text/html": f"<pre>{html.escape(frame.status)}</pre>" + frame.tail,
            }
        body = _block_html(frame.tail, frame.kind) if frame.tail else ""
        return {"text/html": body + _status_html(frame.status)}

    def show(self, frame: Frame) -> None:
        new = frame.done[self._sent_blocks :]
        if new:
            bundle, size = _blocks_bundle(new, frame.kind)
            self._update(len(self._handles) - 1, bundle, size)
            self._open(EMPTY)
            self._sent_blocks = len(frame.done)
        self._update(len(self._handles) - 1, self._tail_bundle(frame))

    def end(self, frame: Frame | None, status: str = "", bar: Bar | None = None) -> None:
        if frame is not None:
            self.show(frame)
            return
        for i in range(len(self._handles)):
            self._update(i, PLACEHOLDER if i == 0 else EMPTY)


# The HTML widget's own line height (28 px) spaces text more loosely than rendered output; with
# JupyterLab's rendered-HTML class (set once on the widget) and a normal line height the growing
# tail looks like the blocks above it and the final answer (no jump when the answer lands).
_LIVE_WRAP: Final = '<div style="line-height:normal">{}</div>'


class WidgetSurface(Surface):
    """ipywidgets, sending each piece of the answer about once.

    Finished blocks go out as ordinary display messages captured by an ``Output`` widget (the
    frontend appends them: only the new part crosses the wire); the growing tail and the status
    line share one ``HTML`` widget, re-sent at each update. With ``bar=True`` (a progress view:
    no blocks, no ``Output``) a progress bar and the status line come first, in a row, and the
    tail below. An update costs at most two messages.

    The capture starts with the first finished block and always ends (``msg_id`` reset) before
    the view ends: a capture left open would swallow the cell's later outputs — the answer —
    into the widget, in JupyterLab and in nbclient's widget emulation alike.
    """

    mode: Mode = "widget"
    messages_per_update = 2

    def __init__(self, *, bar: bool = False) -> None:
        super().__init__()
        import ipywidgets as widgets

        layout = widgets.Layout()  # one layout model for the widgets, not one each
        self._live: Any = widgets.HTML("", layout=layout, _dom_classes=("jp-RenderedHTMLCommon",))
        self._out: Any = None  # the finished blocks (a progress view has none)
        self.bar: Any = None
        self.label: Any = None
        if bar:
            self.bar = widgets.IntProgress(value=0, min=0, max=1, bar_style="info")
            self.label = widgets.HTML("")
            children: list[Any] = [widgets.HBox([self.bar, self.label]), self._live]
        else:
            self._out = widgets.Output(layout=layout)
            children = [self._out, self._live]
        self._box: Any = widgets.VBox(children=children, layout=layout)
        self._sent_blocks = 0
        self._capturing = False
        self._hint = ""
        self._final_status = ""
        bundle: dict[str, Any] = self._box._repr_mimebundle_()
        display({**bundle, **PLACEHOLDER}, raw=True)

    def _set(self, widget: Any, value: str) -> None:
        if widget.value != value:
            widget.value = value
            self.updates += 1
            self.bytes_sent += len(value)

    def _stop_capture(self) -> None:
        if self._capturing:
            self._capturing = False
            self._out.__exit__(None, None, None)

    def _show_bar(self, bar: Bar, status: str) -> None:
        assert self.bar is not None
        self.bar.max = max(1, bar.total)
        self.bar.value = min(bar.value, self.bar.max)
        self.bar.bar_style = bar.style
        self.bar.description = bar.label
        self._set(self.label, "<br>".join(html.escape(line) for line in status.split("\n")))

    def show(self, frame: Frame) -> None:
        kind = frame.kind
        self._hint = frame.hint
        tail_html = _block_html(frame.tail, kind) if frame.tail else ""
        if self.bar is not None and frame.bar is not None:
            self._show_bar(frame.bar, frame.status)
            self._set(self._live, tail_html)
        else:
            # The tail first: a block that just finished leaves the tail before it is appended
            # above (the other order shows it twice for a moment).
            status = _status_html(frame.status, frame.hint)
            self._set(self._live, _LIVE_WRAP.format(tail_html) + status)
        new = frame.done[self._sent_blocks :]
        if new and self._out is not None:
            if not self._capturing:
                # From here on this cell's display messages are captured by the Output widget
                # (the frontend starts capturing when msg_id changes: not at creation).
                self._out.__enter__()
                self._capturing = True
            bundle, size = _blocks_bundle(new, kind)
            display(bundle, raw=True)
            self._sent_blocks = len(frame.done)
            self.updates += 1
            self.bytes_sent += size

    def end(self, frame: Frame | None, status: str = "", bar: Bar | None = None) -> None:
        if frame is not None:
            self.show(frame)
            self._stop_capture()
            return
        self._stop_capture()
        if self.bar is not None:
            self._box.children = [self._box.children[0]]
            if bar is not None:
                self._show_bar(bar, status)
            return
        # The answer stays drawn until the cell's result (the same answer) is out: folding
        # now would leave the cell empty while the result is formatted and sent (a flicker).
        self._final_status = status
        if not _after_cell(self._fold):
            self._fold()

    def _fold(self) -> None:
        """Down to the final status line (the answer now shows as the cell's result)."""
        self._box.children = [self._live]
        self._set(self._live, _status_html(self._final_status, self._hint))
        self._out.close()


def _after_cell(action: Callable[[], None]) -> bool:
    """Run ``action`` once when the running cell is over (after its result was published), in
    a kernel; ``False`` (nothing registered) elsewhere."""
    from IPython.core.getipython import get_ipython

    shell: Any = get_ipython()
    if not has_kernel(shell):
        return False
    events: Any = shell.events

    def once(*_: Any) -> None:
        events.unregister("post_run_cell", once)
        action()

    events.register("post_run_cell", once)
    return True


def make_surface(mode: Mode, *, bar: bool = False, status: TextIO | None = None) -> Surface:
    """A new surface of ``mode`` (created here, it shows its placeholder at once). ``bar``:
    frames carry a progress bar; ``status``: the stream of a text progress line."""
    if mode == "widget":
        return WidgetSurface(bar=bar)
    if mode == "markdown":
        return HandleSurface()
    return TextSurface(status=status)
