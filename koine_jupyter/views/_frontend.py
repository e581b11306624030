"""The one place that decides how live views are drawn (compare ``tqdm.auto``).

Modes:

``widget``
    ipywidgets: finished blocks are appended to an ``Output`` widget, each sent once; only the
    growing last block and the status line are re-sent. Needs a frontend with a widget manager.
``markdown``
    display handles: finished blocks go out once, each batch in its own display; only the last
    display (the growing block and the status line) is updated. Works in every Jupyter frontend.
``text``
    print what is new to stdout (terminal IPython, scripts); a progress line goes to stderr.

:func:`choose_mode` picks one: an explicit preference (``KoineMagics.display``), else the
``KOINE_DISPLAY`` environment variable, else: no kernel → ``text``; a kernel whose frontend is
known to run a widget manager (JupyterLab / Notebook 7 through a Jupyter server, VS Code, or a
frontend that opened the ipywidgets control channel) → ``widget``; any other kernel (nbclient,
nbconvert, nbval, papermill) → ``markdown``. The surfaces themselves are in :mod:`._surfaces`.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Final, Literal, cast

__all__ = [
    "DISPLAY_CHOICES",
    "EMPTY",
    "ENV_DISPLAY",
    "PLACEHOLDER",
    "Mode",
    "choose_mode",
    "display",
    "has_kernel",
    "normalize_choice",
    "widgets_importable",
]

Mode = Literal["widget", "markdown", "text"]
DISPLAY_CHOICES: Final = ("auto", "widget", "markdown", "text")
ENV_DISPLAY: Final = "KOINE_DISPLAY"
PLACEHOLDER: Final[dict[str, Any]] = {"text/plain": ""}
"""What a live view's first display shows before it starts and after it succeeded: a constant,
so a saved notebook records the same whether it ran in JupyterLab, with nbclient or under nbval
(which compares each display as first sent: see :mod:`._surfaces`)."""
EMPTY: Final[dict[str, Any]] = {}
"""The data of every further display of a live view, before and after: nothing to render and
nothing for nbval to compare, so how many there were (it depends on timing) never matters."""


def _shell() -> Any:
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency of the jupyter extra
        return None
    return get_ipython()


def has_kernel(shell: Any = None) -> bool:
    """Whether this runs in a Jupyter kernel (not a terminal IPython, not a script)."""
    if shell is None:
        shell = _shell()
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


def widgets_importable() -> bool:
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
    kernel = has_kernel(shell)
    if choice == "auto":
        if not kernel:
            return "text"
        choice = "widget" if _widget_frontend(shell) else "markdown"
    if choice == "widget" and not (kernel and widgets_importable()):
        return "markdown" if kernel else "text"
    return cast(Mode, choice)


def display(obj: Any, **kwargs: Any) -> Any:
    """IPython's ``display`` (typed loosely: its stubs are partial); returns the handle when
    ``display_id=True`` is given (``None`` outside IPython)."""
    import IPython.display

    return cast(Any, IPython.display).display(obj, **kwargs)
