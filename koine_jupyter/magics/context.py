"""What a ``%koine`` handler may use: :class:`MagicsContext`.

The subcommand handlers (``commands``) and the prompt path (``ask``) are written against this
protocol, not against :class:`~koine_jupyter.magics.core.KoineMagics`: they do not import the
module that imports them (no cycle), they never reach the IPython shell or the magic's settings
object, and what they can reach is listed here, once. The magics object satisfies it
structurally; a test double with these members alone runs the handlers too
(``tests/jupyter/test_magic_context.py``).

Eight members:

- :attr:`~MagicsContext.connection`: the gateway, the key, the client, the local gateway; also
  the way to change them (``connect``, ``use_environment``, ``use_replay``, ``close``), which
  goes through the one settings module (:mod:`.settings`);
- :attr:`~MagicsContext.sessions`: the named conversations of the kernel;
- :attr:`~MagicsContext.failures`: the failed cells (``%koine fix``, ``{Err}``);
- :attr:`~MagicsContext.user_ns`: the notebook's namespace (``{references}``, ``--out``);
- :attr:`~MagicsContext.settings`: a read-only snapshot of what a handler reads of the settings
  (:class:`~.settings.DisplaySettings`: model, display, update rate, interpolation);
- :meth:`~MagicsContext.fail` / :meth:`~MagicsContext.interrupted`: raise an error drawn as a
  few readable lines (the error display lives behind them);
- :meth:`~MagicsContext.cell_value`: what the cell shows as its result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    from koine_sdk import KoineError

    from .._sessions import SessionStore
    from .connection import Connection
    from .failures import FailedCells
    from .settings import DisplaySettings

__all__ = ["MagicsContext"]


class MagicsContext(Protocol):
    """The connection, the sessions, the failed cells, the namespace, a snapshot of the
    settings, and how a handler fails or hands back the cell's value."""

    @property
    def connection(self) -> Connection: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def failures(self) -> FailedCells: ...
    @property
    def user_ns(self) -> dict[str, Any]: ...
    @property
    def settings(self) -> DisplaySettings:
        """The settings a handler reads, as they are now (a frozen snapshot)."""
        ...

    def fail(
        self, exc: KoineError, *, resumed: str | None = None, schema: str | None = None
    ) -> NoReturn:
        """Raise ``exc``, drawn as a few lines with what to do (the advice may name the
        ``--session`` the cell continued and its ``--schema``)."""
        ...

    def interrupted(self, exc: KeyboardInterrupt, what: str) -> NoReturn:
        """Re-raise Ctrl-C, drawn as one line saying ``what`` became of the answer."""
        ...

    def cell_value(
        self, value: Any, metadata: dict[str, Any] | None = None, *, printed: bool = False
    ) -> Any:
        """What the cell returns for ``value``: the value, its output tagged with
        ``metadata`` (provenance); ``None`` if it was ``printed`` already (``_`` and ``Out``
        still get it)."""
        ...
