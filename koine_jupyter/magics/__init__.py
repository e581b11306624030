"""``%%koine`` / ``%koine``: the magic, in small modules.

- :mod:`.core`: :class:`KoineMagics` — the entry point, which tells a prompt from a subcommand,
  and the handlers' context;
- :mod:`.context`: :class:`~.context.MagicsContext`, the eight members a handler may use (the
  connection, the sessions, the failed cells, the namespace, a settings snapshot, ``fail``,
  ``interrupted``, ``cell_value``): never the shell or the magics object;
- :mod:`.settings`: every ``%config KoineMagics`` setting and its check, the environment
  variables (``KOINE_BASE_URL``, ``KOINE_AUTH_KEY``, ``KOINE_REPLAY``, ``KOINE_LEDGER``), the
  SDK's replay names, and what a change does — the one place that reads and writes them;
- :mod:`.args`: the options, declared once as dataclass fields (parsing and help follow);
- :mod:`.commands`: one handler per subcommand, registered in ``COMMANDS``;
- :mod:`.ask`: a prompt → a request → a live view → the cell's value;
- :mod:`.connection`: the gateway's URL, the key's variable, the client, the local gateway;
- :mod:`.failures`, :mod:`.metadata`: the failed cells (``%koine fix``, ``{Err}``), the
  provenance of a cell's result;
- :mod:`.errors`: the short error display and the one table of hints.
"""

from __future__ import annotations

from .core import KoineMagics

__all__ = ["KoineMagics"]
