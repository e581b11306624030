"""The ledger's files on disk: private (folder 0700, database, ``-wal`` and ``-shm`` 0600,
whatever the umask), which file is there now (its identity), and whether it can be written."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Generator
from pathlib import Path

__all__ = [
    "SIDE_FILES",
    "identity",
    "make_folder",
    "private_files",
    "private_umask",
    "readable_by_others",
    "writable",
]

SIDE_FILES = ("", "-wal", "-shm", "-journal")
FileId = tuple[int, int]


@contextlib.contextmanager
def private_umask() -> Generator[None]:
    """Files and folders created inside are for their owner only. (The umask is the
    process's: a thread creating files at this moment gets it too, and only tighter.)"""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def make_folder(folder: Path) -> None:
    """Create the ledger's folder (and missing parents) 0700."""
    if folder.is_dir():
        return
    with private_umask():
        folder.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        folder.chmod(0o700)


def private_files(path: Path) -> None:
    """Make the database and its side files (those that exist) 0600, if they are ours."""
    for suffix in SIDE_FILES:
        side = Path(str(path) + suffix)
        with contextlib.suppress(OSError):
            info = side.stat()
            if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
                side.chmod(stat.S_IMODE(info.st_mode) & 0o700)


def readable_by_others(path: Path) -> bool:
    """Whether the database file can be read by users other than its owner."""
    try:
        return bool(path.stat().st_mode & 0o044)
    except OSError:
        return False


def identity(path: Path) -> FileId | None:
    """The file's identity (device, inode), ``None`` when there is no file."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


def writable(path: Path) -> bool:
    """Whether this process can write the ledger (the file, and its folder for the side
    files SQLite creates)."""
    if path.exists() and not os.access(path, os.W_OK):
        return False
    return os.access(path.parent, os.W_OK | os.X_OK)
