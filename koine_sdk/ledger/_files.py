"""The ledger's files are private to their user: created 0700 (folder) and 0600 (database,
``-wal``, ``-shm``) whatever the umask, with one warning for an existing one others can read."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import warnings
from pathlib import Path

from ..errors import KoineError
from ._warnings import LedgerWarning

__all__ = ["create_private", "file_identity", "writable"]


def _error(message: str, exc: BaseException | None = None) -> KoineError:
    detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
    return KoineError(message + detail, "LEDGER_ERROR")


_warned_readable: set[str] = set()


def create_private(path: Path) -> None:
    """The ledger holds every prompt and answer: its folder is created 0700 and the file 0600
    whatever the umask (SQLite gives the ``-wal`` and ``-shm`` files the database file's mode).
    An existing ledger that others can read is used, with one warning."""
    folder = path.parent
    try:
        if not folder.is_dir():
            folder.mkdir(parents=True, mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)
    except OSError as exc:
        raise _error(f"cannot create the ledger's folder {folder}", exc) from None
    try:
        if not path.exists():
            _create_without_opening(path)
            return
    except FileExistsError:
        pass  # made by another process or thread at the same moment
    except OSError as exc:
        if not path.exists():
            raise _error(f"cannot create the ledger {path}", exc) from None
        return
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    where = str(path)
    mine = os.access(path, os.W_OK)  # a shared, read-only answers file is meant to be read
    if mine and mode & (stat.S_IRGRP | stat.S_IROTH) and where not in _warned_readable:
        _warned_readable.add(where)
        warnings.warn(
            f"The ledger {path} can be read by other users of this machine (mode "
            f"{stat.filemode(mode)}); it holds every prompt and answer. Make it private with: "
            f"chmod 600 {path}",
            LedgerWarning,
            stacklevel=4,
        )


def _create_without_opening(path: Path) -> None:
    """Create an empty 0600 file at ``path`` without ever opening ``path`` itself.

    POSIX locks belong to a process, and closing *any* descriptor of a file drops all of them:
    opening and closing the ledger here while another thread of this process already holds
    SQLite's locks on it would silently free those locks (SQLite then reports "disk I/O error",
    or two writers meet). So the file is made under a private temporary name and hard-linked into
    place, which also fails cleanly when the ledger appeared meanwhile."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    with contextlib.suppress(FileNotFoundError):  # left by a dead process of the same pid
        os.unlink(temporary)
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)  # FileExistsError when another one won the race: fine
    except FileExistsError:
        raise
    except OSError:
        # No hard links on this file system: create in place, never reopening an existing file.
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
        os.close(fd)
    finally:
        os.unlink(temporary)


def writable(path: Path) -> bool:
    """Whether this process may write ``path`` (and its folder, for ``-wal``/``-shm``)."""
    if path.exists() and not os.access(path, os.W_OK):
        return False
    return os.access(path.parent, os.W_OK)


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at ``path`` (``None`` when there is none): a deleted or
    replaced ledger shows as a change."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
