"""Live views of Koine streams for notebooks (and terminals).

``show_stream(stream)`` draws any sync SDK stream while it runs and returns its result; the
views themselves (:class:`TextView`, :class:`ObjectView`, :class:`FrameView`) can be used
directly. Where to draw (widgets, display handles, or plain text) is chosen once, in
:mod:`._frontend`; the three ways of drawing are in :mod:`._surfaces`, the lifecycle every view
shares in :mod:`._live`.
"""

from __future__ import annotations

from typing import Any, overload

from koine_sdk import SyncStreamObjectResult, SyncStreamTextResult

from ._frontend import DISPLAY_CHOICES, ENV_DISPLAY, Mode, choose_mode
from ._live import LiveView
from .frame import FrameView, flatten_record, to_dataframe
from .object import ObjectView, object_html
from .text import FORMATS, AnswerFormat, KoineAnswer, TextView

__all__ = [
    "DISPLAY_CHOICES",
    "ENV_DISPLAY",
    "FORMATS",
    "AnswerFormat",
    "FrameView",
    "KoineAnswer",
    "LiveView",
    "Mode",
    "ObjectView",
    "TextView",
    "choose_mode",
    "flatten_record",
    "object_html",
    "show_stream",
    "to_dataframe",
]


@overload
def show_stream(
    stream: SyncStreamTextResult, *, display: str | None = ..., dataframe: bool = ...
) -> KoineAnswer: ...
@overload
def show_stream(
    stream: SyncStreamObjectResult[Any], *, display: str | None = ..., dataframe: bool = ...
) -> Any: ...
def show_stream(
    stream: SyncStreamTextResult | SyncStreamObjectResult[Any],
    *,
    display: str | None = None,
    dataframe: bool = False,
) -> Any:
    """Draw a sync stream while it runs and return its result: a :class:`KoineAnswer` for a
    text stream, the validated object for an object stream (a DataFrame with
    ``dataframe=True``)::

        with koine.stream_text(prompt="Explain SSE") as stream:
            answer = show_stream(stream)
    """
    if isinstance(stream, SyncStreamTextResult):
        return TextView(display=display).consume(stream)
    if dataframe:
        return FrameView(display=display).consume(stream)
    return ObjectView[Any](display=display).consume(stream)
