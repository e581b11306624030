"""Where the ledger lives: the user's cache directory, moved or turned off by ``KOINE_LEDGER``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_LEDGER", "MEMORY", "OFF_VALUES", "default_location"]

ENV_LEDGER = "KOINE_LEDGER"
MEMORY = ":memory:"
OFF_VALUES = frozenset({"0", "off", "false", "no", "none", "disabled"})
FILE_NAME = "ledger.sqlite3"


def _cache_dir() -> Path:
    # platformdirs knows each system's cache folder (XDG_CACHE_HOME / ~/.cache on Linux,
    # ~/Library/Caches on macOS, the known LOCALAPPDATA folder on Windows); imported only here.
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("koine", appauthor=False))


def default_location() -> Path | str | None:
    """The ledger used when none is named: ``$KOINE_LEDGER`` (a file path, or a folder, named
    with a trailing slash or existing, holding ``ledger.sqlite3``; ``:memory:`` for
    one kept in this process; ``0``/``off``/``false``/``no``/``none`` for none), else
    ``<user cache dir>/koine/ledger.sqlite3``. ``None`` means turned off. A path that is a
    folder, or ends with a path separator (a folder still to be made), holds ``ledger.sqlite3``."""
    raw = os.environ.get(ENV_LEDGER)
    if raw is not None and raw.strip():
        value = raw.strip()
        if value.lower() in OFF_VALUES:
            return None
        if value == MEMORY:
            return MEMORY
        path = Path(value).expanduser()
        folder = value.endswith(("/", os.sep)) or path.is_dir()
        return path / FILE_NAME if folder else path
    return _cache_dir() / FILE_NAME
