"""Changing the magic's settings, in one place: the replay-mode names (and their aliases) and
the environment variables a change also sets, so SDK clients and ``extract`` calls made in
later cells of the kernel follow the magic.

``KoineMagics.replay`` accepts :data:`REPLAY_CHOICES`; ``%koine replay`` accepts
:data:`USER_MODES`; both, and ``$KOINE_REPLAY``, are read through :func:`replay_mode`.
"""

from __future__ import annotations

import os
from typing import Final, Protocol

__all__ = [
    "ENV_AUTH_KEY",
    "ENV_BASE_URL",
    "ENV_LEDGER",
    "ENV_REPLAY",
    "REPLAY_CHOICES",
    "USER_MODES",
    "ReplaySettings",
    "export_gateway",
    "replay_mode",
    "set_replay",
    "shown_mode",
]

ENV_BASE_URL: Final = "KOINE_BASE_URL"
ENV_AUTH_KEY: Final = "KOINE_AUTH_KEY"
ENV_REPLAY: Final = "KOINE_REPLAY"
ENV_LEDGER: Final = "KOINE_LEDGER"

REPLAY_CHOICES: Final = ("auto", "off", "on", "replay", "record", "strict")
"""``KoineMagics.replay``: ``auto`` follows ``$KOINE_REPLAY``; ``on`` is ``replay``."""
USER_MODES: Final = ("on", "off", "record", "strict")
"""What ``%koine replay MODE`` takes."""

_ALIASES: Final = {"on": "replay", "0": "off", "false": "off", "no": "off", "none": "off"}


def replay_mode(name: str) -> str:
    """The client's name for a replay mode (``on`` -> ``replay``; ``0``/``no``/... -> ``off``);
    an unknown name is returned as given (the client refuses it)."""
    mode = name.strip().lower()
    return _ALIASES.get(mode, mode)


def shown_mode(mode: str) -> str:
    """A client mode as the user writes it (``replay`` -> ``on``)."""
    return "on" if mode == "replay" else mode


class ReplaySettings(Protocol):
    replay: str
    ledger: str


def set_replay(settings: ReplaySettings, mode: str | None, ledger: str | None) -> None:
    """Set the magic's replay mode (a client mode, or ``None``: unchanged) and ledger
    (``None``: unchanged), and ``$KOINE_REPLAY`` / ``$KOINE_LEDGER`` with them."""
    if ledger is not None:
        settings.ledger = ledger
        os.environ[ENV_LEDGER] = ledger
    if mode is not None:
        settings.replay = shown_mode(mode)
        os.environ[ENV_REPLAY] = mode


def export_gateway(url: str, key: str) -> None:
    """Point ``$KOINE_BASE_URL`` and ``$KOINE_AUTH_KEY`` at a gateway for this kernel."""
    os.environ[ENV_BASE_URL] = url
    os.environ[ENV_AUTH_KEY] = key
