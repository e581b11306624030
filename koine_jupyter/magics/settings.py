"""The magic's settings, in one place: their names, what each accepts, the environment variables
they read and write, and what a change does.

:class:`KoineSettings` declares every ``%config KoineMagics.<name>`` setting (``KoineMagics``
inherits them) with its check: a refused value raises :class:`SettingError` (a ``UsageError``
naming the values the setting takes) and changes nothing. A change — from ``%config``, from
``ipython_config.py``, or from a subcommand through :meth:`KoineSettings.change` — then goes
through one observer: a replay mode other than ``auto`` is exported as ``$KOINE_REPLAY``, a
ledger as ``$KOINE_LEDGER`` (so SDK clients and ``extract`` calls made in later cells follow the
magic), and the connection is told to make a new client. ``%koine connect --local`` exports
``$KOINE_BASE_URL`` / ``$KOINE_AUTH_KEY`` through :meth:`KoineSettings.use_local`.

Replay modes and their aliases are the SDK's (:func:`koine_sdk.replay_mode`): a setting
stores the name a user writes (``replay`` reads ``on``; ``no``, ``0``... read ``off``).

Handlers never see this object: they read a :class:`DisplaySettings` snapshot
(:attr:`~.context.MagicsContext.settings`) and change the connection's settings through the
:class:`~.connection.Connection`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from IPython.core.error import UsageError
from traitlets import Bool, Float, Integer, TraitError, Unicode, observe, validate
from traitlets.config import Configurable

from koine_sdk import REPLAY_MODES as MODES
from koine_sdk import KoineError
from koine_sdk import replay_mode as sdk_replay_mode

from ..views._frontend import DISPLAY_CHOICES
from ..views._markdown import set_remote_images
from .args import VARIABLE

__all__ = [
    "ENV_AUTH_KEY",
    "ENV_BASE_URL",
    "ENV_LEDGER",
    "ENV_REPLAY",
    "RECONNECT",
    "REPLAY_CHOICES",
    "USER_MODES",
    "DisplaySettings",
    "KoineSettings",
    "SettingError",
    "check_replay_ledger",
    "replay_setting",
    "shown_mode",
]

ENV_BASE_URL: Final = "KOINE_BASE_URL"
ENV_AUTH_KEY: Final = "KOINE_AUTH_KEY"
ENV_REPLAY: Final = "KOINE_REPLAY"
ENV_LEDGER: Final = "KOINE_LEDGER"


def shown_mode(mode: str) -> str:
    """A client mode as the user writes it (``replay`` -> ``on``)."""
    return "on" if mode == "replay" else mode


USER_MODES: Final = tuple(shown_mode(m) for m in MODES)
"""What ``%koine replay MODE`` takes: the SDK's modes, ``replay`` written ``on``."""
REPLAY_CHOICES: Final = ("auto", *USER_MODES)
"""What ``KoineMagics.replay`` takes: ``auto`` follows ``$KOINE_REPLAY``."""

RECONNECT: Final = (
    "base_url",
    "auth_key_env",
    "model",
    "timeout",
    "max_retries",
    "replay",
    "ledger",
)
"""The settings the client is made with: a change closes it (the next request makes another)."""


class SettingError(UsageError, TraitError):
    """A setting's value was refused: the message names the values it takes; nothing changed.
    A ``TraitError`` too, so ``%config`` (traitlets) rolls back every value of the statement.
    Subcommands re-raise it as a plain ``UsageError`` (which IPython shows in one line)."""


def _either(names: tuple[str, ...]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}"


def replay_setting(value: object, where: str = "KoineMagics.replay", auto: bool = True) -> str:
    """The replay name ``value`` stands for, as stored (``auto``, ``off``, ``record``, ``on``,
    ``strict``); the SDK's aliases are accepted. Else :class:`SettingError`."""
    if auto and isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    allowed = REPLAY_CHOICES if auto else USER_MODES
    if not isinstance(value, str):
        raise SettingError(f"{where} takes {_either(allowed)} (got {value!r})")
    try:
        return shown_mode(sdk_replay_mode(value))
    except KoineError:
        raise SettingError(f"{where} takes {_either(allowed)} (got {value!r})") from None


def check_replay_ledger(ledger: str) -> None:
    """A mode that records or replays needs a usable ledger (``ledger``, else the default):
    said now, not at the next cell. ``UsageError`` when ``$KOINE_LEDGER`` turns it off,
    ``KoineError("LEDGER_ERROR")`` when the file cannot be used."""
    from koine_sdk.ledger import default_location, open_ledger

    if not ledger and default_location() is None:
        raise UsageError(
            f"replay needs the ledger, but ${ENV_LEDGER} turns it off: set it to a file, or "
            "name one with %koine replay MODE --ledger PATH"
        )
    open_ledger(ledger or None, fallback=False)


@dataclass(frozen=True, slots=True)
class DisplaySettings:
    """What a handler reads of the settings (a snapshot: changing it changes nothing)."""

    model: str | None = None
    display: str = "auto"
    update_rate: float = 20.0
    interpolate: bool = True


class KoineSettings(Configurable):
    """Every setting of the magic, checked on assignment; see the module's docstring."""

    base_url = Unicode(
        "", help=f"The gateway's URL (empty: the {ENV_BASE_URL} environment variable)."
    ).tag(config=True)
    auth_key_env = Unicode(
        ENV_AUTH_KEY,
        help="The environment variable that holds the gateway's key (the key itself is "
        "never stored in the notebook).",
    ).tag(config=True)
    model = Unicode(None, allow_none=True, help="Default model alias or name.").tag(config=True)
    timeout = Float(
        None, allow_none=True, help="Seconds to wait for the gateway (and for each event)."
    ).tag(config=True)
    display = Unicode(
        "auto",
        help="How answers are drawn while they stream: auto, widget, markdown (display "
        "handles) or text. 'auto' honours the KOINE_DISPLAY environment variable.",
    ).tag(config=True)
    update_rate = Float(20.0, help="At most this many live updates a second.").tag(config=True)
    max_retries = Integer(
        0, help="Retries of a busy (429) gateway or a failed connection, per request."
    ).tag(config=True)
    interpolate = Bool(True, help="Fill {name} references in prompts.").tag(config=True)
    replay = Unicode(
        "auto",
        help="Answers from the ledger: off; record (ask the gateway, record every answer); on "
        "(answer recorded requests from the ledger, ask and record the rest); strict (the "
        "ledger only: an unrecorded request fails). 'auto' honours KOINE_REPLAY, else off. "
        "Another mode is also exported as KOINE_REPLAY for SDK code in this kernel.",
    ).tag(config=True)
    ledger = Unicode(
        "",
        help="The ledger file replay records to and answers from (empty: KOINE_LEDGER, else "
        "the user cache folder). A file named here is also exported as KOINE_LEDGER.",
    ).tag(config=True)
    remote_images = Bool(
        False,
        help="Load remote images in answers (off: shown as links, since loading an image URL "
        "can send data out of the notebook). KOINE_REMOTE_IMAGES=1 turns it on too.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        # before the traits: loading the configuration already calls the observer
        self._listeners: list[Callable[[], None]] = []
        super().__init__(**kwargs)

    # -- checks (run on every assignment; inside %config, before anything changes) -----------

    @validate("replay")
    def _check_replay(self, proposal: Any) -> str:
        return replay_setting(proposal["value"])

    @validate("display")
    def _check_display(self, proposal: Any) -> str:
        value = str(proposal["value"]).strip().lower()
        if value not in DISPLAY_CHOICES:
            raise SettingError(
                f"KoineMagics.display takes {_either(DISPLAY_CHOICES)} (got {proposal['value']!r})"
            )
        return value

    @validate("auth_key_env")
    def _check_key_env(self, proposal: Any) -> str:
        value: str = proposal["value"]
        if value and not VARIABLE.fullmatch(value):
            raise SettingError(
                "KoineMagics.auth_key_env takes the NAME of an environment variable (letters, "
                "digits, _), not a key"
            )
        return value

    @validate("update_rate")
    def _check_rate(self, proposal: Any) -> float:
        return _positive("update_rate", proposal["value"])

    @validate("timeout")
    def _check_timeout(self, proposal: Any) -> float | None:
        value = proposal["value"]
        return None if value is None else _positive("timeout", value)

    @validate("max_retries")
    def _check_retries(self, proposal: Any) -> int:
        value: int = proposal["value"]
        if value < 0:
            raise SettingError(f"KoineMagics.max_retries takes a whole number >= 0 (got {value})")
        return value

    # -- what a change does -------------------------------------------------------------------

    @observe(*RECONNECT, "remote_images")
    def _changed(self, change: Any) -> None:
        name, new = change["name"], change["new"]
        if name == "remote_images":
            set_remote_images(True if new else None)
            return
        self._export(name, new)
        for listener in self._listeners:
            listener()

    @staticmethod
    def _export(name: str, value: Any) -> None:
        if name == "replay" and value != "auto":
            os.environ[ENV_REPLAY] = sdk_replay_mode(value)
        elif name == "ledger" and value:
            os.environ[ENV_LEDGER] = value

    def on_reconnect(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after any change of the settings a client is made with."""
        self._listeners.append(listener)

    def change(self, **values: Any) -> None:
        """Set several settings at once, as one ``%config`` statement would: each is checked,
        and if one is refused none changes. The environment follows each value given (even one
        already set), then the connection."""
        known = self.traits(config=True)
        for name in values:
            if name not in known:
                raise AttributeError(f"KoineMagics has no setting {name!r}")
        try:
            with self.hold_trait_notifications():
                for name, value in values.items():
                    setattr(self, name, value)
        except SettingError as exc:
            raise UsageError(str(exc)) from None  # IPython shows a plain UsageError in one line
        for name in values:
            self._export(name, getattr(self, name))

    def set_replay(self, mode: str | None, ledger: str | None) -> None:
        """``%koine replay [MODE] [--ledger PATH]``: the mode (``None``: unchanged) and the
        ledger (``None``: unchanged), checked before anything changes — the mode's name, and
        for a mode that uses it, the ledger."""
        values: dict[str, str] = {}
        if mode is not None:
            try:
                values["replay"] = replay_setting(mode, "%koine replay", auto=False)
            except SettingError as exc:
                raise UsageError(str(exc)) from None
            if values["replay"] != "off":
                check_replay_ledger(self.ledger if ledger is None else ledger)
        if ledger is not None:
            values["ledger"] = ledger
        self.change(**values)

    def snapshot(self) -> DisplaySettings:
        """What a handler reads, now."""
        return DisplaySettings(self.model, self.display, self.update_rate, self.interpolate)

    # -- the environment: read ---------------------------------------------------------------

    def gateway_url(self) -> str:
        """The URL in use: ``base_url``, else ``$KOINE_BASE_URL``."""
        return self.base_url or os.environ.get(ENV_BASE_URL, "")

    def url_origin(self) -> str:
        """Where the URL in use comes from, for messages."""
        return "KoineMagics.base_url" if self.base_url else f"${ENV_BASE_URL}"

    @staticmethod
    def environment_url() -> str:
        """``$KOINE_BASE_URL`` (empty: not set)."""
        return os.environ.get(ENV_BASE_URL, "")

    @staticmethod
    def environment_ledger() -> str | None:
        """``$KOINE_LEDGER``: what the client uses when no ledger is set."""
        return os.environ.get(ENV_LEDGER)

    def replay_in_use(self) -> str:
        """The client's replay mode: ``replay``, else ``$KOINE_REPLAY``, else ``off``. A name
        in the environment the SDK does not know is returned as written (the client refuses
        it, saying why)."""
        if self.replay != "auto":
            return sdk_replay_mode(self.replay)
        raw = os.environ.get(ENV_REPLAY, "")
        try:
            return sdk_replay_mode(raw)
        except KoineError:
            return raw.strip().lower()

    # -- the environment: the local gateway ----------------------------------------------------

    def use_local(self, url: str, key: str) -> None:
        """Use the local gateway at ``url``, and point ``$KOINE_BASE_URL`` and
        ``$KOINE_AUTH_KEY`` at it (so SDK code in later cells finds it)."""
        self.change(base_url=url)
        os.environ[ENV_BASE_URL] = url
        os.environ[ENV_AUTH_KEY] = key

    def drop_local(self, url: str, key: str | None) -> None:
        """The local gateway at ``url`` stops: forget it wherever it is still named."""
        if self.base_url == url:
            self.change(base_url="")
        if os.environ.get(ENV_BASE_URL) == url:
            os.environ.pop(ENV_BASE_URL, None)
        if key is not None and os.environ.get(ENV_AUTH_KEY) == key:
            os.environ.pop(ENV_AUTH_KEY, None)


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise SettingError(f"KoineMagics.{name} takes a number > 0 (got {value!r})")
    return value
