"""What a ``%koine`` handler may use of the magics: :class:`MagicsContext`.

The subcommand handlers (``commands``) and the prompt path (``ask``) are written against this
protocol, not against :class:`~koine_jupyter.magics.core.KoineMagics`, so they do not import the
module that imports them (no cycle), and what a handler can reach is listed in one place. The
magics object satisfies it structurally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    from koine_sdk import KoineError

    from .._sessions import SessionStore
    from .connection import Connection
    from .errors import ErrorContext, ErrorRenderer
    from .failures import FailedCells
    from .metadata import ResultMetadata

__all__ = ["MagicsContext"]


class MagicsContext(Protocol):
    """The connection, the sessions, the settings a handler reads, the namespace, and how it
    fails or reports."""

    @property
    def connection(self) -> Connection: ...
    @property
    def sessions(self) -> SessionStore: ...
    @property
    def errors(self) -> ErrorRenderer: ...
    @property
    def result_metadata(self) -> ResultMetadata: ...
    @property
    def failures(self) -> FailedCells: ...
    @property
    def user_ns(self) -> dict[str, Any]: ...
    @property
    def shell(self) -> Any: ...

    # settings (``%config KoineMagics.<name>``)
    model: Any
    display: Any
    update_rate: Any
    interpolate: Any
    replay: Any
    ledger: Any

    def fail(self, exc: KoineError) -> NoReturn:
        """Raise ``exc``, drawn as a few lines with what to do."""
        ...

    def error_context(self, prepared: Any = None) -> ErrorContext:
        """What the advice for a failure may mention."""
        ...

    def close(self) -> None:
        """Close the client (and a local gateway the magics started)."""
        ...
