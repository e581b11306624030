"""koine_jupyter: the Koine gateway in Jupyter — the ``%%koine`` magic and live views.

In a notebook::

    %load_ext koine_jupyter

    %%koine
    Explain {topic} in two sentences.

From Python, any sync SDK stream can be drawn live with :func:`show_stream` (or the views
:class:`TextView`, :class:`ObjectView`, :class:`FrameView`). ``extract`` (many texts → one
DataFrame), ``classify`` (a label per text) and ``generate`` (free text per text), with their async
twins, are imported on first use from :mod:`koine_jupyter.extraction`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

from .views import (
    FrameView,
    KoineAnswer,
    ObjectView,
    TextView,
    choose_mode,
    flatten_record,
    show_stream,
    to_dataframe,
)

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

    from .magics import KoineMagics

__all__ = [
    "FrameView",
    "KoineAnswer",
    "ObjectView",
    "TextView",
    "aclassify",  # pyright: ignore[reportUnsupportedDunderAll] - provided lazily by __getattr__
    "aextract",  # pyright: ignore[reportUnsupportedDunderAll]
    "agenerate",  # pyright: ignore[reportUnsupportedDunderAll]
    "choose_mode",
    "classify",  # pyright: ignore[reportUnsupportedDunderAll]
    "clear_cache",  # pyright: ignore[reportUnsupportedDunderAll]
    "extract",  # pyright: ignore[reportUnsupportedDunderAll]
    "flatten_record",
    "generate",  # pyright: ignore[reportUnsupportedDunderAll]
    "load_ipython_extension",
    "show_stream",
    "to_dataframe",
    "unload_ipython_extension",
]

_LOADED: dict[int, KoineMagics] = {}


def load_ipython_extension(ipython: InteractiveShell) -> None:
    """``%load_ext koine_jupyter``: register ``%%koine`` / ``%koine`` (idempotent)."""
    from .magics import KoineMagics

    if id(ipython) in _LOADED:
        return
    magics = KoineMagics(shell=ipython)
    if "pandas" in sys.modules:  # the .koine accessor, without importing pandas for others
        from . import accessor  # noqa: F401  # pyright: ignore[reportUnusedImport]
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics.after_cell)
    _LOADED[id(ipython)] = magics


def unload_ipython_extension(ipython: InteractiveShell) -> None:
    """``%unload_ext koine_jupyter``: remove the magics, close the connection."""
    magics = _LOADED.pop(id(ipython), None)
    if magics is None:
        return
    manager: Any = ipython.magics_manager
    table: dict[str, dict[str, Any]] = manager.magics
    for kind in ("line", "cell"):
        if getattr(table[kind].get("koine"), "__self__", None) is magics:
            del table[kind]["koine"]
    try:
        ipython.events.unregister("post_run_cell", magics.after_cell)
    except ValueError:
        pass
    configurables: list[Any] = cast(Any, ipython).configurables
    if magics in configurables:
        configurables.remove(magics)
    magics.close()


_LAZY = frozenset(
    {"extract", "aextract", "classify", "aclassify", "generate", "agenerate", "clear_cache"}
)


def __getattr__(name: str) -> Any:
    # pandas is an optional extra: the extraction module is imported on first use.
    if name in _LAZY:
        from . import extraction

        value = getattr(extraction, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
