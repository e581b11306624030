"""``%%koine`` / ``%koine``: the magic, in small modules.

- :mod:`.core`: :class:`KoineMagics` — the settings (traitlets) and the entry point, which tells a
  prompt from a subcommand;
- :mod:`.args`: the options, declared once as dataclass fields (parsing and help follow);
- :mod:`.commands`: one handler per subcommand, registered in ``COMMANDS``;
- :mod:`.ask`: a prompt → a request → a live view → the cell's value;
- :mod:`.connection`: the gateway's URL, the key's variable, the client, the local gateway;
- :mod:`.errors`: the short error display and the one table of hints.
"""

from __future__ import annotations

from .core import KoineMagics

__all__ = ["KoineMagics"]
