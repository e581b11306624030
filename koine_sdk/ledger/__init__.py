"""The ledger: a durable record of requests and their answers (cache, checkpoint and log).

Every finished request is written to a SQLite file and committed at once, keyed by
:func:`request_key` (a hash of the endpoint, the prompt and everything else that decides the
answer). A later identical request can take its answer from there instead of paying again:
``koine_jupyter.extract`` does this for every row, so a re-run after a crash or ``kill -9``
requests only what is missing; a client made with ``replay=`` (``KOINE_REPLAY``) records its
calls' answers here and replays them, with the same key.

Where: ``<user cache dir>/koine/ledger.sqlite3`` (``~/.cache/koine/`` on Linux,
``~/Library/Caches/koine/`` on macOS, ``%LOCALAPPDATA%\\koine\\Cache\\`` on Windows);
``KOINE_LEDGER=/path/file.sqlite3`` moves it, ``KOINE_LEDGER=off`` turns it off (answers are
then kept in this process only). **Prompts and answers are stored in plain text.**

Only the standard library is imported here (sqlite3); pandas only by the DataFrame readers
(:meth:`Ledger.runs`, :meth:`Ledger.rows`).
"""

from __future__ import annotations

import collections
import os
import threading
import warnings
from typing import Any, cast

from ..errors import KoineError
from ._claims import ClaimResult
from ._key import KEY_FIELDS, RequestShape, canonical_json, content_hash, request_key, request_keys
from ._location import ENV_LEDGER, MEMORY, default_location
from ._store import Ledger, LedgerRecord
from ._warnings import LedgerWarning

__all__ = [
    "ENV_LEDGER",
    "KEY_FIELDS",
    "MEMORY",
    "ClaimResult",
    "Ledger",
    "LedgerRecord",
    "LedgerSpec",
    "LedgerWarning",
    "RequestShape",
    "canonical_json",
    "content_hash",
    "default_location",
    "open_ledger",
    "process_ledger",
    "request_key",
    "request_keys",
]

LedgerSpec = str | os.PathLike[str] | Ledger | bool | None
"""What a ``ledger=`` argument takes: ``None``/``True`` (the default ledger), ``False`` (this
process's in-memory ledger), a file path, or a :class:`Ledger`."""


_PROCESS: dict[str, Ledger] = {}
_PROCESS_LOCK = threading.Lock()
_OPENED: collections.OrderedDict[str, Ledger] = collections.OrderedDict()
_OPENED_KEPT = 8  # ledgers kept open by path (the least recently used beyond are closed)


def process_ledger() -> Ledger:
    """This process's in-memory ledger (``ledger=False``, ``KOINE_LEDGER=off``, and the
    fallback when the file cannot be used): shared by every call, gone when the process ends."""
    with _PROCESS_LOCK:
        current = _PROCESS.get(MEMORY)
        if current is None or current._closed:  # pyright: ignore[reportPrivateUsage]
            current = _PROCESS[MEMORY] = Ledger(MEMORY)
        return current


def open_ledger(ledger: LedgerSpec = None, *, fallback: bool = True) -> Ledger:
    """The :class:`Ledger` a ``ledger=`` argument names (see :data:`LedgerSpec`).

    A file that cannot be used (corrupt, locked, a folder that cannot be created) raises
    ``KoineError("LEDGER_ERROR")`` with ``fallback=False``; with ``fallback=True`` it warns
    (:class:`LedgerWarning`) and returns :func:`process_ledger`, so a run never fails for it.
    Ledgers opened from a path are kept open and reused for the same path in this process.
    """
    spec: Any = ledger
    if isinstance(spec, Ledger):
        return spec
    if ledger is False:
        return process_ledger()
    location: str | os.PathLike[str] | None
    if ledger is None or ledger is True:
        location = default_location()
        if location is None:
            return process_ledger()
    elif isinstance(spec, str | os.PathLike):
        location = cast("str | os.PathLike[str]", spec)
    else:
        raise KoineError(
            f"ledger must be a file path, a Ledger, True or False (got {type(spec).__name__})",
            "INVALID_ARGUMENT",
        )
    if str(location) == MEMORY:
        return process_ledger()
    where: str = os.path.abspath(os.path.expanduser(str(location)))
    with _PROCESS_LOCK:
        cached = _OPENED.get(where)
        if cached is not None and not cached._closed:  # pyright: ignore[reportPrivateUsage]
            _OPENED.move_to_end(where)
            return cached
    try:
        opened = Ledger(where)
    except KoineError as exc:
        if not fallback:
            raise
        warnings.warn(
            f"{exc.message}. Answers of this call are kept in this process only.",
            LedgerWarning,
            stacklevel=2,
        )
        return process_ledger()
    with _PROCESS_LOCK:
        _OPENED[where] = opened
        while len(_OPENED) > _OPENED_KEPT:
            _OPENED.popitem(last=False)[1].close()
    return opened
